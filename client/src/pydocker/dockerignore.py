"""``.dockerignore``: reading the file as buildkit's ``dockerignore.ReadAll`` does, and
matching paths as moby's ``patternmatcher`` does.

Reading: a line starting with ``#`` is a comment; lines are trimmed and blank ones skipped;
a leading ``!`` makes an exception; each pattern is cleaned like a path (``./a//b/`` →
``a/b``) and loses a leading ``/``.

Matching (:class:`PatternMatcher`): the patterns are tried in order and the last one that
matches decides, an exception re-including what an earlier pattern excluded. A pattern
matches a path when it matches the path itself or one of its parent directories (so
``dir`` excludes everything under ``dir``). ``*`` and ``?`` do not cross ``/``; ``**``
crosses any number of directories, zero included; ``[...]`` is a character class and
``\\`` escapes the next character. moby's shortcuts are kept, with their quirks: a
pattern that starts with ``**`` and has no other wildcard matches by suffix (``**foo``
matches ``barfoo``), one that ends with ``**`` and has no other, by prefix.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from pydocker.errors import PydockerError

__all__ = [
    "BadPattern",
    "Pattern",
    "PatternMatcher",
    "clean_path",
    "read_dockerignore",
    "trim_build_files",
]

_BOM = "\ufeff"
_REGEX_SPECIALS = frozenset(".+()|{}$")


class BadPattern(PydockerError):
    """A pattern Go's ``filepath.Match`` refuses (``syntax error in pattern``)."""

    def __init__(self) -> None:
        super().__init__("syntax error in pattern")


def clean_path(path: str) -> str:
    """Go's ``filepath.Clean``: ``""`` → ``.``, ``a//b/../c/`` → ``a/c``."""
    return posixpath.normpath(path) if path else "."


def read_dockerignore(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` file's text."""
    patterns: list[str] = []
    for line in text.removeprefix(_BOM).splitlines():
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean_path(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append(f"!{pattern}" if invert else pattern)
    return patterns


class _Kind(Enum):
    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    REGEXP = "regexp"


@dataclass
class Pattern:
    """One cleaned pattern; ``exclusion`` for a ``!`` exception."""

    text: str
    exclusion: bool
    _kind: _Kind = field(init=False, default=_Kind.EXACT)
    _regexp: re.Pattern[str] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._compile()

    def _compile(self) -> None:
        source = self.text
        regexp = "^"
        kind = _Kind.EXACT
        index = 0
        while index < len(source):
            start = index
            char = source[index]
            index += 1
            if char == "*" and source[index : index + 1] == "*":
                index += 1
                if source[index : index + 1] == "/":
                    index += 1
                if index >= len(source):  # "**" at the end: everything below
                    if kind is _Kind.EXACT:
                        kind = _Kind.PREFIX
                    else:
                        regexp += ".*"
                        kind = _Kind.REGEXP
                else:
                    regexp += "(.*/)?"
                    kind = _Kind.REGEXP
                if start == 0:  # the pattern opens with it
                    kind = _Kind.SUFFIX
            elif char == "*":
                regexp += "[^/]*"
                kind = _Kind.REGEXP
            elif char == "?":
                regexp += "[^/]"
                kind = _Kind.REGEXP
            elif char in _REGEX_SPECIALS:
                regexp += "\\" + char
            elif char == "\\":
                if index < len(source):
                    regexp += "\\" + source[index]
                    index += 1
                else:
                    regexp += "\\\\"
            elif char in "[]":
                regexp += char
                kind = _Kind.REGEXP
            else:
                regexp += re.escape(char) if char == "^" else char
        self._kind = kind
        if kind is _Kind.REGEXP:
            try:
                self._regexp = re.compile(regexp + "$")
            except re.error:
                raise BadPattern() from None

    def match(self, path: str) -> bool:
        """Whether the pattern matches ``path`` itself (not its parents)."""
        if self._kind is _Kind.EXACT:
            return path == self.text
        if self._kind is _Kind.PREFIX:
            return path.startswith(self.text[:-2])
        if self._kind is _Kind.SUFFIX:
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self._regexp is not None
        return self._regexp.match(path) is not None


def _parents(path: str) -> list[str]:
    """``a/b/c`` → ``["a", "a/b"]``."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class PatternMatcher:
    """moby's ``PatternMatcher`` over cleaned, slash-separated paths relative to the
    context.

    :raises BadPattern: a pattern that does not compile, or a lone ``!``.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            text = raw.strip()
            if not text:
                continue
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise PydockerError('illegal exclusion pattern: "!"')
                text = text[1:]
            self.patterns.append(Pattern(clean_path(text), exclusion))

    @property
    def exclusions(self) -> bool:
        """Whether any pattern is an exception."""
        return any(p.exclusion for p in self.patterns)

    def matches(self, path: str) -> bool:
        """``MatchesOrParentMatches``: whether ``path`` is excluded."""
        path = clean_path(path)
        if path == ".":
            return False  # the context itself is never excluded
        parents = _parents(path)
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # an inclusion once excluded, or an exception before one
            if pattern.match(path) or any(pattern.match(p) for p in parents):
                matched = not pattern.exclusion
        return matched

    def exception_below(self, directory: str) -> bool:
        """Whether an exception may re-include something under ``directory``, so that an
        excluded directory must still be walked (moby's prefix test)."""
        prefix = directory + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)


def trim_build_files(
    patterns: Sequence[str], dockerfile: str, dockerfile_from_stdin: bool
) -> list[str]:
    """docker's ``TrimBuildFilesFromExcludes``: exceptions for ``.dockerignore`` and the
    Dockerfile when the patterns exclude them, so that the daemon receives both."""
    result = list(patterns)
    if PatternMatcher(result).matches(".dockerignore"):
        result.append("!.dockerignore")
    if not dockerfile_from_stdin and PatternMatcher(result).matches(dockerfile):
        result.append(f"!{dockerfile}")
    return result
