"""pydockerd's overlay storage driver."""
