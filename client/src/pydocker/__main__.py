"""``python -m pydocker``: the same as the ``pydocker`` command."""

from __future__ import annotations

from pydocker.cli import main

if __name__ == "__main__":
    main(prog_name="pydocker")
