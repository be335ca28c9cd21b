"""``python -m pydockerd``: the same as the ``pydockerd`` command."""

from pydockerd.cli import main

main()
