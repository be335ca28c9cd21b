"""pydockerd's vfs storage driver."""
