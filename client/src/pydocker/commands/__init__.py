"""``pydocker`` subcommands, one module per area; each exports ``COMMANDS``."""
