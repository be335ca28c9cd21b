"""The Docker Engine API, one module per resource; :mod:`pydockerd.api.app` assembles them."""
