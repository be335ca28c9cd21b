"""The supervisor: the process that holds containers while the daemon restarts."""
