"""pydockerd's host network driver."""
