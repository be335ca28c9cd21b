"""pydockerd's registry transport over the OCI Distribution API."""
