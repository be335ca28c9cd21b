"""Container names: validation, and the random ``adjective_scientist`` names Docker gives."""

from __future__ import annotations

import re
import secrets

from pydockerd.errors import InvalidParameter

__all__ = ["random_name", "valid_name"]

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")

_ADJECTIVES = (
    "agile", "amazing", "bold", "brave", "bright", "calm", "clever", "cool", "crisp",
    "curious", "daring", "eager", "earnest", "elated", "epic", "fervent", "fond", "gallant",
    "gentle", "glad", "happy", "hardy", "jolly", "keen", "kind", "lively", "loving", "lucid",
    "merry", "modest", "nimble", "noble", "patient", "peaceful", "plucky", "proud", "quick",
    "quiet", "radiant", "serene", "sharp", "steady", "stoic", "sunny", "tender", "tidy",
    "upbeat", "vibrant", "wise", "witty", "zealous",
)  # fmt: skip

_SCIENTISTS = (
    "agnesi", "archimedes", "babbage", "bohr", "boole", "cannon", "carson", "curie",
    "darwin", "dijkstra", "einstein", "euclid", "euler", "faraday", "fermat", "fermi",
    "feynman", "franklin", "galileo", "gauss", "goodall", "hamilton", "hawking", "hertz",
    "hopper", "hypatia", "johnson", "kepler", "knuth", "lamarr", "leakey", "lovelace",
    "maxwell", "meitner", "mendel", "newton", "noether", "pascal", "pasteur", "planck",
    "ritchie", "sagan", "shannon", "somerville", "tesla", "thompson", "turing", "volta",
    "wiles", "wright", "wu", "yalow",
)  # fmt: skip


def random_name() -> str:
    """``brave_turing``: what a container is called when nobody names it."""
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_SCIENTISTS)}"


def valid_name(name: str) -> str:
    """``name`` without its leading ``/``, if Docker would accept it.

    :raises InvalidParameter: Docker's ``Invalid container name (...)`` message.
    """
    bare = name.removeprefix("/")
    if not _NAME.fullmatch(bare):
        raise InvalidParameter(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return bare
