"""pydockerd volume driver: local (directories under the data-root, or mounts by options)."""
