"""``pydocker`` subcommands, one module per area."""
