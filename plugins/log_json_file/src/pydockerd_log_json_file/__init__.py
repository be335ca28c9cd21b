"""pydockerd log driver: json-file, with bounded rotation."""
