"""pydockerd runtime: native Linux containers (namespaces, pivot_root, cgroups) in Python."""
