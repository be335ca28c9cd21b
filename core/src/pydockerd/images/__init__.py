"""The image subsystem: references, content store, image and layer stores."""
