"""The ``pydocker-registry`` command. Only ``--version`` exists so far: the server, ``gc`` and
``validate`` come with issue 6 (see the README)."""

from __future__ import annotations

import click

from pydocker_registry import __version__

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, "-v", "--version", message="pydocker-registry version %(version)s"
)
def main() -> None:
    """pydocker-registry: an image registry (OCI Distribution API). Not implemented yet:
    only --version works today."""
