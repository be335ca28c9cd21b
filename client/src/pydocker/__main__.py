"""``python -m pydocker``: the same as the ``pydocker`` command."""

from pydocker.cli import main

main()
