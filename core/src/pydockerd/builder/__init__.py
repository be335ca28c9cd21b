"""The image builder: the Dockerfile front end (:mod:`.dockerfile`) and the engine that runs it."""
