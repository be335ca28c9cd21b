"""pydockerd's bridge network driver."""
