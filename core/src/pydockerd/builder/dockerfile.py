"""The Dockerfile front end: text -> stages of instructions, and Docker's word expansion.

It behaves as Docker's parser does (moby/buildkit ``frontend/dockerfile/parser``,
``instructions`` and the ``shell`` lexer), in two passes as there:

1. *lines*: parser directives, comments, line continuations, heredoc bodies, ``--flags``
   and each instruction's argument shape (JSON array, words, ``key=value`` pairs);
2. *instructions*: flags checked against what each instruction accepts, argument counts,
   stage names, ONBUILD triggers, the stage structure.

So an error of the first kind anywhere in the file wins over one of the second kind on an
earlier line, as with Docker. Nothing here is expanded: the builder calls :func:`expand`,
:func:`key_values`, :func:`expand_arguments` and :func:`sources_and_dest` with the
environment of the moment. The module is pure (no I/O).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from pydockerd.durations import parse_duration_ns
from pydockerd.errors import InvalidParameter

__all__ = [
    "DEFAULT_SHELL",
    "Dockerfile",
    "DockerfileError",
    "Heredoc",
    "Instruction",
    "Stage",
    "command_line",
    "expand",
    "expand_arguments",
    "expand_heredoc",
    "expand_words",
    "healthcheck",
    "key_values",
    "parse",
    "parse_instruction",
    "run_script",
    "sources_and_dest",
]

# Go's unicode.IsSpace, which Docker's parser uses wherever it trims or splits on "space".
_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"  # noqa: E501
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")  # the parser's reWhitespace / tokenWhitespace
_DIRECTIVE = re.compile(
    r"#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*"
)
_DIRECTIVES = frozenset({"escape", "syntax", "check"})
_HEREDOC = re.compile(r"([0-9]*)<<(-?)([^<]*)", re.DOTALL)
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*")
_ONBUILD_PREFIX = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)
DEFAULT_SHELL = ("/bin/sh", "-c")


class DockerfileError(InvalidParameter):
    """A Dockerfile Docker would refuse, with Docker's reason.

    ``str()`` is ``Dockerfile parse error on line N: <reason>``, or the bare reason when the
    error belongs to no line (an expansion outside a parse, a file with no instructions).
    """

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        text = reason if line is None else f"Dockerfile parse error on line {line}: {reason}"
        super().__init__(text)


@contextmanager
def _at(line: int) -> Iterator[None]:
    """Attach ``line`` to a DockerfileError raised without one."""
    try:
        yield
    except DockerfileError as err:
        if err.line is not None:
            raise
        raise DockerfileError(err.reason, line) from None


def _quote(text: str) -> str:
    """Go's ``%q`` for the strings that appear in Docker's messages."""
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True)
class Heredoc:
    """One here-document of an instruction (``<<EOF`` ... ``EOF``)."""

    name: str  # the delimiter word, quotes removed
    content: str  # the body with its line endings (final newline kept); <<- tabs stripped
    expand: bool  # False when any part of the delimiter was quoted
    chomp: bool  # <<-
    fd: int = 0  # the file descriptor before << (``3<<EOF``), 0 when none


@dataclass(frozen=True)
class Instruction:
    """One instruction as written: keyword, flags and raw (unexpanded) arguments."""

    keyword: str
    arguments: str
    exec_form: tuple[str, ...] | None
    flags: tuple[tuple[str, str], ...]
    heredocs: tuple[Heredoc, ...]
    line: int
    original: str
    end_line: int = 0
    # The arguments as Docker's parser splits them, unexpanded: the JSON array; the words of
    # ADD/COPY/VOLUME/EXPOSE/FROM; the whole text of RUN/CMD/ENTRYPOINT/USER/WORKDIR/...;
    # key, value, key, value ... for ENV/LABEL; the words of ARG; HEALTHCHECK's type then
    # its command; ONBUILD's trigger keyword then the trigger's own args.
    args: tuple[str, ...] = ()

    def flag(self, name: str) -> str | None:
        """The last value given to ``--name``, None when absent."""
        values = self.flags_named(name)
        return values[-1] if values else None

    def flags_named(self, name: str) -> list[str]:
        """Every value given to ``--name``, in order (``--mount`` may repeat)."""
        return [value for key, value in self.flags if key == name]

    @property
    def trigger(self) -> str:
        """ONBUILD: the trigger as Docker stores it in the image (``RUN echo hi``).

        Heredoc bodies follow the line, so :func:`parse_instruction` reads it back whole.
        """
        text = _ONBUILD_PREFIX.sub("", self.original, count=1)
        return text + "".join(f"\n{doc.content}{doc.name}" for doc in self.heredocs)


@dataclass(frozen=True)
class Stage:
    """A build stage: its FROM and the instructions after it."""

    index: int
    name: str | None
    base: str
    platform: str | None
    from_instruction: Instruction
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile."""

    escape: str
    syntax: str | None
    meta_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    warnings: tuple[str, ...] = field(default=())

    def find_stage(self, name_or_index: str) -> Stage | None:
        """The stage named so (case-insensitively), else the one at that index, else None."""
        wanted = name_or_index.lower()
        for stage in self.stages:
            if stage.name == wanted:
                return stage
        if name_or_index.isascii() and name_or_index.isdigit():
            index = int(name_or_index)
            if index < len(self.stages):
                return self.stages[index]
        return None

    def stage(self, name_or_index: str) -> Stage:
        """The stage for ``--target`` or ``COPY --from``; InvalidParameter when unknown."""
        found = self.find_stage(name_or_index)
        if found is None:
            raise InvalidParameter(f"target stage {_quote(name_or_index)} could not be found")
        return found


# --------------------------------------------------------------------------------------
# The shell lexer: quotes, escapes and $-expansion of one word or a whole text.


class _LexError(Exception):
    pass


class _Words:
    """Splits the lexer's output into words: expanded text splits on space, quoted not."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.buf: list[str] = []

    def add_char(self, ch: str) -> None:
        if ch in _SPACE:
            if self.buf:
                self.words.append("".join(self.buf))
                self.buf = []
        else:
            self.buf.append(ch)

    def add_raw(self, text: str) -> None:
        if text:  # "" joins no word: ``"" a`` is one word
            self.buf.append(text)

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def finish(self) -> list[str]:
        word = "".join(self.buf)
        if word:
            self.words.append(word)
            self.buf = []
        return self.words


_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class _Lexer:
    """Docker's shell-word processor (``shell.Lex``), for one input text."""

    def __init__(
        self,
        text: str,
        env: Mapping[str, str],
        escape: str,
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_unset: bool = False,
        skip_quotes: bool = False,
    ) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self.skip_quotes = skip_quotes

    def process(self) -> tuple[str, list[str]]:
        try:
            return self.stop_on("", self.raw_escapes)
        except _LexError as err:
            raise DockerfileError(f"failed to process {_quote(self.text)}: {err}") from None

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    def stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        """Process up to ``stop`` (consumed) or the end when ``stop`` is empty."""
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        quotes = not self.skip_quotes
        while ch := self.peek():
            if stop and ch == stop:
                self.next()
                return "".join(result), words.finish()
            if ch == "$":
                value = self.dollar()
                result.append(value)
                words.add_string(value)
                continue
            if quotes and ch in "'\"":
                value = self.single_quote() if ch == "'" else self.double_quote()
                result.append(value)
                words.add_raw(value)
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    words.add_raw(ch)
                    result.append(ch)
                ch = self.next()
                if not ch:
                    break
                words.add_raw(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.finish()

    def single_quote(self) -> str:
        """Everything up to the next ``'`` as is: nothing escapes inside single quotes."""
        end = self.text.find("'", self.pos + 1)
        if end < 0:
            raise _LexError("unexpected end of statement while looking for matching single-quote")
        body = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return f"'{body}'" if self.raw_quotes else body

    def double_quote(self) -> str:
        opening = self.next()
        result = [opening] if self.raw_quotes else []
        while True:
            ch = self.peek()
            if not ch:
                raise _LexError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.next()
                if self.raw_quotes:
                    result.append(ch)
                return "".join(result)
            if ch == "$":
                result.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    result.append(ch)
                following = self.peek()
                if not following:
                    continue  # an escape at the very end is dropped (then: unterminated)
                if following in ('"', "$", self.escape):
                    ch = self.next()
            result.append(ch)

    def name(self) -> str:
        """A variable name: letters, digits, _; or a digit run; or one special parameter."""
        start = self.pos
        ch = self.peek()
        if ch.isdecimal():
            while self.peek().isdecimal():
                self.pos += 1
            return self.text[start : self.pos]
        if ch in _SPECIAL_PARAMS and ch:
            self.pos += 1
            return ch
        while (ch := self.peek()) and (ch.isalpha() or ch.isdecimal() or ch == "_"):
            self.pos += 1
        return self.text[start : self.pos]

    def lookup(self, name: str) -> str | None:
        return self.env.get(name)

    def dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value = self.lookup(name)
            if value is None:
                return "$" + name if self.skip_unset else ""
            return value
        self.next()  # the {
        ch = self.peek()
        if not ch:
            raise _LexError("syntax error: missing '}'")
        if ch in "{}:":
            raise _LexError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        op = ch or "\ufffd"
        if ch == "}":
            value = self.lookup(name)
            if value is None:
                return "${" + name + "}" if self.skip_unset else ""
            return value
        if ch == "/":
            return self.replace(name)
        null_is_unset = ch == ":"
        if null_is_unset:
            ch = self.next()
            op += ch or "\ufffd"
        elif ch not in ("+", "-", "?", "#", "%"):
            raise _LexError(f"unsupported modifier ({op}) in substitution")
        pattern = ch in ("#", "%")
        if null_is_unset and pattern:
            raise _LexError(f"unsupported modifier ({op}) in substitution")
        word = self.stop_on_brace("}", pattern)
        value = self.lookup(name)
        if value is None and self.skip_unset:
            return "${" + name + op + word + "}"
        return _modify(name, value, ch, shown=op, word=word, null=null_is_unset)

    def stop_on_brace(self, stop: str, raw_escapes: bool) -> str:
        try:
            return self.stop_on(stop, raw_escapes)[0]
        except _LexError:
            if not self.peek():
                missing = "'}'" if stop == "}" else "'/' in ${}"
                raise _LexError(f"syntax error: missing {missing}") from None
            raise

    def replace(self, name: str) -> str:
        every = self.peek() == "/"
        if every:
            self.next()
        pattern = self.stop_on_brace("/", True)
        replacement = self.stop_on_brace("}", True)
        value = self.lookup(name)
        if value is None and self.skip_unset:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        return regex.sub(lambda _: replacement, value or "", count=0 if every else 1)


def _modify(name: str, value: str | None, op: str, *, shown: str, word: str, null: bool) -> str:
    """``${name<op>word}`` for op in - + ? # %; ``null`` when the op had a colon."""
    unset = value is None or (null and value == "")
    if op == "-":
        return word if unset else (value or "")
    if op == "+":
        return "" if unset else word
    if op == "?":
        if value is None:
            raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
        if null and value == "":
            raise _LexError(f"{name}: {word or 'is not allowed to be empty'}")
        return value
    if op in ("#", "%"):
        greedy = word.startswith(op)
        if greedy:
            word = word[1:]
        if op == "#":
            return _trim_prefix(word, value or "", greedy)
        return _trim_prefix(_reverse_pattern(word), (value or "")[::-1], greedy)[::-1]
    raise _LexError(f"unsupported modifier ({shown}) in substitution")


_REGEX_SPECIAL = frozenset("[]{}.+()|^$")


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell wildcard pattern (``*``, ``?``, ``\\`` escapes) as a regular expression."""
    out = ["^"] if anchored else []
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(".*" if greedy else ".*?")
        elif tok == "?":
            out.append(".")
        elif tok == "\\":
            following = pattern[i] if i < len(pattern) else ""
            if following in ("}", "/") and following:
                continue
            i += 1
            if following not in ("*", "?", "\\") or not following:
                reason = f"invalid escape '\\{following or chr(0xFFFD)}'"
                raise _LexError(f"invalid pattern ({pattern}) in substitution: {reason}")
            out.append("\\" + following)
        else:
            out.append("\\" + tok if tok in _REGEX_SPECIAL else re.escape(tok))
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[match.end() :] if match else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern, keeping each ``\\x`` escape pair in order."""
    pieces: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            pieces.append(pattern[i : i + 2])
            i += 2
        else:
            pieces.append(pattern[i])
            i += 1
    return "".join(reversed(pieces))


def expand(word: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """Docker's processing of one word: quotes removed, escapes and ``$`` expanded.

    ``$VAR ${VAR} ${VAR:-w} ${VAR-w} ${VAR:+w} ${VAR+w} ${VAR:?msg} ${VAR?msg}`` and the
    pattern forms ``${VAR#p} ${VAR##p} ${VAR%p} ${VAR%%p} ${VAR/p/r} ${VAR//p/r}``; unknown
    variables are empty; no command substitution. Spaces inside the word are kept.
    """
    return _Lexer(word, env, escape).process()[0]


def expand_words(text: str, env: Mapping[str, str], *, escape: str = "\\") -> list[str]:
    """:func:`expand` on a whole text, split into words as Docker's ``ProcessWords`` does.

    Space separates words unless quoted or escaped; expanded values split on space; empty
    words (``""``) are dropped.
    """
    return _Lexer(text, env, escape).process()[1]


def expand_heredoc(heredoc: Heredoc, env: Mapping[str, str]) -> str:
    """The body of a COPY/ADD heredoc as Docker writes it: expanded unless quoted.

    As Docker: quotes are left alone, ``\\`` escapes (``\\$`` keeps a dollar).
    """
    if not heredoc.expand:
        return heredoc.content
    return _Lexer(heredoc.content, env, "\\", skip_quotes=True).process()[0]


# --------------------------------------------------------------------------------------
# Pass 1: lines -> nodes.


@dataclass
class _Node:
    keyword: str  # upper-case
    flags: list[str]  # "--name=value" / "--name", quotes removed
    rest: str  # the arguments text
    original: str
    start: int
    args: list[str] = field(default_factory=list)
    json: bool = False
    heredocs: list[Heredoc] = field(default_factory=list)
    end: int = 0
    child: _Node | None = None

    @property
    def accepts_heredocs(self) -> bool:
        node = self.child if self.keyword == "ONBUILD" and self.child else self
        return node.keyword in ("RUN", "COPY", "ADD") and not node.json


_MAX_LINE = 65536  # bufio.MaxScanTokenSize: Docker's scanner reads no longer line


def _split_lines(text: str) -> list[str]:
    """Lines with their endings, as Go's scanner with line endings kept."""
    lines = text.split("\n")
    last = lines.pop()
    result = [line + "\n" for line in lines]
    if last:
        result.append(last)
    for number, line in enumerate(result, 1):
        if len(line) > _MAX_LINE // 4 and len(line.encode("utf-8", "surrogatepass")) > _MAX_LINE:
            raise DockerfileError(
                f"dockerfile line greater than max allowed size of {_MAX_LINE - 1}", number
            )
    return result


def _extract_flags(text: str) -> tuple[str, list[str]]:
    """Leading ``--flag[=value]`` words (quotes and ``\\`` processed) and the rest."""
    flags: list[str] = []
    pos, size = 0, len(text)
    while True:
        while pos < size and text[pos] in _SPACE:
            pos += 1
        if pos == size:
            return "", flags
        if not text.startswith("--", pos):
            return text[pos:], flags
        word: list[str] = []
        quote = ""
        while pos < size:
            ch = text[pos]
            if not quote and ch in _SPACE:
                break
            pos += 1
            if quote and ch == quote:
                quote = ""
            elif not quote and ch in "'\"":
                quote = ch
            elif ch == "\\":
                if pos < size:
                    word.append(text[pos])
                    pos += 1
            else:
                word.append(ch)
        flag = "".join(word)
        if flag == "--":
            return text[pos:], flags
        flags.append(flag)


def _parse_json(text: str) -> list[str] | None:
    """The JSON array of strings ``text`` is, or None when it is no JSON array."""
    text = text.lstrip(_SPACE)
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise DockerfileError(
            "when using JSON array syntax, arrays must be comprised of strings only"
        )
    return value


def _no_constant(name: str) -> object:
    raise ValueError(name)  # Go's JSON has no NaN / Infinity


def _parse_words(text: str, escape: str) -> list[str]:
    """Words of ENV/LABEL/ARG, quotes and escapes kept (the parser's ``parseWords``)."""
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    quote = ""
    in_word = False
    pos, size = 0, len(text)
    while pos < size:
        ch = text[pos]
        pos += 1
        if not in_word:
            if ch in _SPACE:
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
        elif ch in _SPACE:
            if blank_ok or word:
                words.append("".join(word))
            word, blank_ok, in_word = [], False, False
            continue
        elif ch in "'\"":
            quote, blank_ok = ch, True
        if ch == escape and quote != "'":  # kept with the character it escapes
            if pos == size:
                continue  # an escape at the very end is dropped
            word.append(ch)
            ch = text[pos]
            pos += 1
        word.append(ch)
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


def _name_values(rest: str, keyword: str, escape: str) -> list[str]:
    """ENV/LABEL: ``k=v ...`` or the legacy ``k v w``; flat key, value, key, value ..."""
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise DockerfileError(f"{keyword} must have two arguments")
        return parts
    pairs: list[str] = []
    for word in words:
        if "=" not in word:
            raise DockerfileError(
                f"Syntax error - can't find = in {_quote(word)}. Must be of the form: name=value"
            )
        pairs.extend(word.split("=", 1))
    return pairs


def _split_command(line: str) -> tuple[str, list[str], str]:
    parts = _WHITESPACE.split(line.strip(_SPACE), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    rest, flags = _extract_flags(parts[1])
    return parts[0], flags, rest.strip(_SPACE)


def _new_node(line: str, start: int, escape: str) -> _Node:
    keyword, flags, rest = _split_command(line)
    node = _Node(keyword.upper(), flags, rest, line.strip(_SPACE), start)
    kind = node.keyword
    if kind in ("ADD", "COPY", "VOLUME", "RUN", "CMD", "ENTRYPOINT", "SHELL"):
        array = _parse_json(rest)
        if array is not None:
            node.args, node.json = array, True
        elif kind in ("ADD", "COPY", "VOLUME"):
            node.args = _WHITESPACE.split(rest) if rest else []
        else:
            node.args = [rest] if rest else []
    elif kind in ("EXPOSE", "FROM"):
        node.args = _WHITESPACE.split(rest) if rest else []
    elif kind in ("MAINTAINER", "STOPSIGNAL", "USER", "WORKDIR"):
        node.args = [rest] if rest else []
    elif kind in ("ENV", "LABEL"):
        node.args = _name_values(rest, kind, escape)
    elif kind == "ARG":
        node.args = _parse_words(rest, escape)
    elif kind == "HEALTHCHECK":
        _health_args(node)
    elif kind == "ONBUILD" and rest:
        node.child = _new_node(rest, start, escape)
        node.args = [node.child.keyword, *node.child.args]
    return node


def _health_args(node: _Node) -> None:
    rest = node.rest
    sep = 0
    while sep < len(rest) and rest[sep] not in _SPACE:
        sep += 1
    if sep == 0:
        return
    command = rest[sep:].lstrip(_SPACE)
    array = _parse_json(command) if command else None
    if array is not None:
        node.args, node.json = [rest[:sep], *array], True
    else:
        node.args = [rest[:sep], command] if command else [rest[:sep]]


def _heredoc_marker(word: str) -> Heredoc | None:
    """The heredoc a word like ``<<EOF``, ``<<-'EOF'``, ``3<<EOF`` opens, with no content."""
    match = _HEREDOC.fullmatch(word)
    if match is None or not match.group(3):
        return None
    delimiter = match.group(3)
    plain = _Lexer(delimiter, {}, "\\", skip_unset=True).process()[1]
    if len(plain) != 1:
        return None
    raw = _Lexer(delimiter, {}, "\\", skip_unset=True, raw_quotes=True).process()[1]
    if len(raw) != len(plain):
        raise DockerfileError(
            f"internal lexing of heredoc produced inconsistent results: {delimiter}"
        )
    quotes = plain[0].count("'") + plain[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    fd = int(match.group(1)) if match.group(1) else 0
    return Heredoc(plain[0], "", quotes == raw_quotes, match.group(2) == "-", fd)


def _must_heredoc(word: str) -> Heredoc | None:
    """:func:`_heredoc_marker`, None where its delimiter cannot be lexed (Docker's ``Must``)."""
    try:
        return _heredoc_marker(word)
    except DockerfileError:
        return None


def _heredoc_markers(line: str) -> list[Heredoc]:
    lexer = _Lexer(line, {}, "\\", raw_quotes=True, raw_escapes=True, skip_unset=True)
    try:
        words = lexer.process()[1]
    except DockerfileError:
        return []  # Docker ignores a line its lexer cannot read here
    return [doc for doc in map(_heredoc_marker, words) if doc is not None]


class _Directives:
    """Parser directives at the top of the file, and the escape character they set."""

    def __init__(self, active: bool, escape: str) -> None:
        self.done = not active
        self.seen: dict[str, str] = {}
        self.escape = escape
        self.set_escape(escape)

    def set_escape(self, token: str) -> None:
        if token not in ("`", "\\"):
            raise DockerfileError(f"invalid escape token '{token}' does not match ` or \\")
        self.escape = token
        esc = re.escape(token)
        self.continuation = re.compile(rf"([^{esc}]){esc}[ \t]*$|^{esc}[ \t]*$")

    def check(self, line: str) -> None:
        if self.done:
            return
        match = _DIRECTIVE.fullmatch(line)
        key = match.group(1).lower() if match else ""
        if match is None or key not in _DIRECTIVES:
            self.done = True
            return
        if key in self.seen:
            raise DockerfileError(f"only one {key} parser directive can be used")
        self.seen[key] = match.group(2)
        if key == "escape":
            self.set_escape(match.group(2))

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """The line without its continuation mark, and whether the instruction ends here."""
        match = self.continuation.search(line)
        if match is None:
            return line, True
        return line[: match.start()] + (match.group(1) or ""), False


@dataclass
class _Scan:
    nodes: list[_Node]
    directives: _Directives
    warnings: list[str]


def _scan(text: str, *, directives: bool, first_line: int = 1, escape: str = "\\") -> _Scan:
    """Pass 1: the file's lines into nodes (instructions with their raw arguments)."""
    lines = _split_lines(text)
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    state = _Directives(directives, escape)
    nodes: list[_Node] = []
    warnings: list[str] = []
    i, count = 0, len(lines)
    offset = first_line - 1
    while i < count:
        token = lines[i].rstrip("\r\n").lstrip(_SPACE)
        with _at(offset + i + 1):
            state.check(token)
        i += 1
        start = offset + i
        line, ended = state.trim_continuation("" if token.startswith("#") else token)
        if ended and not line:
            continue
        empty_continuation = False
        while not ended and i < count:
            part = lines[i].rstrip("\r\n")
            i += 1
            if part.lstrip(_SPACE).startswith("#"):
                continue  # comment lines inside a continuation are dropped
            if not part.lstrip(_SPACE):
                empty_continuation = True
                continue
            part, ended = state.trim_continuation(part)
            line += part
        if empty_continuation:
            warnings.append(f"[WARNING]: Empty continuation line found in:\n    {line}")
        with _at(start):
            node = _new_node(line, start, state.escape)
            target = node.child if node.keyword == "ONBUILD" and node.child else node
            if node.accepts_heredocs and "<<" in line:
                for marker in _heredoc_markers(line):
                    body, i = _read_heredoc(lines, i, marker, start)
                    target.heredocs.append(body)
        node.end = offset + i
        nodes.append(node)
    if warnings:
        warnings.append(
            "[WARNING]: Empty continuation lines will become errors in a future release."
        )
    return _Scan(nodes, state, warnings)


def _read_heredoc(lines: list[str], i: int, marker: Heredoc, start: int) -> tuple[Heredoc, int]:
    body: list[str] = []
    while i < len(lines):
        raw = lines[i]
        i += 1
        candidate = raw.rstrip("\r\n")
        if marker.chomp:
            candidate = candidate.lstrip("\t")
        if candidate == marker.name:
            content = "".join(body)
            if marker.chomp:
                content = _LEADING_TABS.sub("", content)
            return Heredoc(marker.name, content, marker.expand, marker.chomp, marker.fd), i
        body.append(raw)
    raise DockerfileError("unterminated heredoc", start)


# --------------------------------------------------------------------------------------
# Pass 2: nodes -> instructions.

_BOOL, _ONE, _MANY = "bool", "string", "strings"
_FLAG_KINDS: dict[str, dict[str, str]] = {
    "ADD": {
        "chown": _ONE,
        "chmod": _ONE,
        "link": _BOOL,
        "keep-git-dir": _BOOL,
        "checksum": _ONE,
        "exclude": _MANY,
        "unpack": _BOOL,
    },
    "COPY": {
        "chown": _ONE,
        "from": _ONE,
        "chmod": _ONE,
        "link": _BOOL,
        "exclude": _MANY,
        "parents": _BOOL,
    },
    "FROM": {"platform": _ONE},
    "RUN": {"mount": _MANY, "network": _ONE, "security": _ONE},
    "HEALTHCHECK": {
        "interval": _ONE,
        "timeout": _ONE,
        "start-period": _ONE,
        "start-interval": _ONE,
        "retries": _ONE,
    },
}


def _split_flag(flag: str) -> tuple[str, str | None]:
    name, sep, value = flag[2:].partition("=")
    return name, value if sep else None


def _raw_flags(flags: list[str]) -> list[tuple[str, str]]:
    """Flags of an instruction Docker does not check them on (STOPSIGNAL, HEALTHCHECK NONE)."""
    pairs = []
    for flag in flags:
        name, value = _split_flag(flag)
        pairs.append((name, "true" if value is None else value))
    return pairs


def _check_flags(keyword: str, flags: list[str]) -> list[tuple[str, str]]:
    """Docker's BFlags.Parse: every flag known to the instruction, typed, not repeated."""
    kinds = _FLAG_KINDS.get(keyword, {})
    pairs: list[tuple[str, str]] = []
    used: set[str] = set()
    for flag in flags:
        name, value = _split_flag(flag)
        kind = kinds.get(name)
        if kind is None:
            raise DockerfileError(f"Unknown flag: {name}")
        if name in used and kind != _MANY:
            raise DockerfileError(f"Duplicate flag specified: {name}")
        used.add(name)
        if kind == _BOOL:
            if value == "":
                raise DockerfileError(f"Missing a value on flag: {name}")
            lowered = (value or "true").lower()
            if lowered not in ("true", "false"):
                raise DockerfileError(f"Expecting boolean value for flag {name}, not: {value}")
            value = lowered
        elif value is None:
            raise DockerfileError(f"Missing a value on flag: {name}")
        pairs.append((name, value))
    return pairs


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise DockerfileError(reason)


def _at_least_one(node: _Node) -> None:
    _require(bool(node.args), f"{node.keyword} requires at least one argument")


def _exactly_one(node: _Node) -> None:
    _require(len(node.args) == 1, f"{node.keyword} requires exactly one argument")


def _two_or_more(node: _Node) -> None:
    _require(
        len(node.args) >= 2,
        f"{node.keyword} requires at least two arguments, but only one was provided. "
        "Destination could not be determined",
    )


def _stage_name(args: list[str]) -> str | None:
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        _require(
            _STAGE_NAME.fullmatch(name) is not None,
            f"invalid name for build stage: {_quote(args[2])}, "
            "name can't start with a number or contain symbols",
        )
        return name
    _require(len(args) == 1, "FROM requires either one or three arguments")
    return None


def _check_onbuild(node: _Node) -> None:
    trigger = node.args[0].upper()
    _require(trigger != "ONBUILD", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    _require(
        trigger not in ("MAINTAINER", "FROM"), f"{trigger} isn't allowed as an ONBUILD trigger"
    )


def _check(node: _Node) -> list[tuple[str, str]]:
    """Docker's per-instruction checks, in Docker's order; the instruction's flags."""
    kind = node.keyword
    if kind in ("MAINTAINER", "WORKDIR", "USER"):
        _exactly_one(node)
    elif kind in ("ADD", "COPY"):
        _two_or_more(node)
    elif kind == "FROM":
        _stage_name(node.args)
    elif kind in ("ONBUILD", "EXPOSE", "VOLUME", "ARG", "HEALTHCHECK"):
        _at_least_one(node)
    elif kind == "STOPSIGNAL":
        _exactly_one(node)
        return _raw_flags(node.flags)
    elif kind not in ("ENV", "LABEL", "RUN", "CMD", "ENTRYPOINT", "SHELL"):
        raise DockerfileError(f"unknown instruction: {kind}")
    if kind == "HEALTHCHECK" and node.args[0].upper() == "NONE":
        _require(len(node.args) == 1, "HEALTHCHECK NONE takes no arguments")
        return _raw_flags(node.flags)
    flags = _check_flags(kind, node.flags)
    if kind in ("ENV", "LABEL"):
        _at_least_one(node)
        _require(all(node.args[0::2]), f"{kind} names can not be blank")
    elif kind == "ARG":
        _require(all(arg.partition("=")[0] for arg in node.args), "ARG names can not be blank")
    elif kind == "ONBUILD":
        _check_onbuild(node)
    elif kind in ("ADD", "COPY"):
        _require(
            _must_heredoc(node.args[-1]) is None,
            f"{kind} cannot accept a heredoc as a destination",
        )
    elif kind == "VOLUME":
        _require(
            all(arg.strip(_SPACE) for arg in node.args),
            "VOLUME specified can not be an empty string",
        )
    elif kind == "SHELL":
        _require(bool(node.args), "SHELL requires at least one argument")
        _require(node.json, "SHELL requires the arguments to be in JSON form")
    return flags


def _instruction(node: _Node) -> Instruction:
    with _at(node.start):
        flags = _check(node)
        result = _make_instruction(node, flags)
        if node.keyword == "HEALTHCHECK":
            healthcheck(result)
    return result


def _make_instruction(node: _Node, flags: list[tuple[str, str]]) -> Instruction:
    exec_form: tuple[str, ...] | None = None
    if node.json:
        exec_form = tuple(node.args[1:] if node.keyword == "HEALTHCHECK" else node.args)
    heredocs = node.child.heredocs if node.child else node.heredocs
    return Instruction(
        keyword=node.keyword,
        arguments=node.rest,
        exec_form=exec_form,
        flags=tuple(flags),
        heredocs=tuple(heredocs),
        line=node.start,
        original=node.original,
        end_line=node.end,
        args=tuple(node.args),
    )


def _decode(text: str | bytes) -> str:
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    return text


def parse(text: str | bytes) -> Dockerfile:
    """Parse a Dockerfile as Docker does; DockerfileError with Docker's reason and line."""
    scan = _scan(_decode(text), directives=True)
    if not scan.nodes:
        raise DockerfileError("file with no instructions")
    meta_args: list[Instruction] = []
    stages: list[Stage] = []
    current: list[Instruction] = []
    for node in scan.nodes:
        instruction = _instruction(node)
        if instruction.keyword == "FROM":
            _close_stage(stages, current)
            stages.append(_open_stage(len(stages), instruction, stages))
            current = []
        elif not stages and instruction.keyword == "ARG":
            meta_args.append(instruction)
        elif not stages:
            raise DockerfileError("no build stage in current context", node.start)
        else:
            current.append(instruction)
    _close_stage(stages, current)
    if not stages:
        raise DockerfileError("dockerfile contains no stages to build")
    return Dockerfile(
        escape=scan.directives.escape,
        syntax=scan.directives.seen.get("syntax"),
        meta_args=tuple(meta_args),
        stages=tuple(stages),
        warnings=tuple(scan.warnings),
    )


def _open_stage(index: int, instruction: Instruction, stages: list[Stage]) -> Stage:
    name = _stage_name(list(instruction.args))
    if name is not None and any(stage.name == name for stage in stages):
        raise DockerfileError(f"duplicate stage name {_quote(name)}", instruction.line)
    return Stage(
        index=index,
        name=name,
        base=instruction.args[0],
        platform=instruction.flag("platform"),
        from_instruction=instruction,
        instructions=(),
    )


def _close_stage(stages: list[Stage], instructions: list[Instruction]) -> None:
    if stages and instructions:
        last = stages[-1]
        stages[-1] = Stage(
            last.index,
            last.name,
            last.base,
            last.platform,
            last.from_instruction,
            tuple(instructions),
        )


def parse_instruction(text: str, line: int = 1, escape: str = "\\") -> Instruction:
    """One instruction from its text: an ONBUILD trigger when the builder fires it.

    ``text`` may hold continuation lines and heredoc bodies (see :attr:`Instruction.trigger`);
    ``line`` numbers its first line in errors. FROM and MAINTAINER are refused, as Docker
    refuses them as triggers.
    """
    with _at(line):
        scan = _scan(text, directives=False, first_line=line, escape=escape)
    if len(scan.nodes) != 1:
        raise DockerfileError("onbuild trigger should be a single expression", line)
    node = scan.nodes[0]
    if node.keyword in ("FROM", "MAINTAINER"):
        raise DockerfileError(f"{node.keyword} isn't allowed as an ONBUILD trigger", line)
    return _instruction(node)


# --------------------------------------------------------------------------------------
# What the builder asks of an instruction.


def key_values(
    instruction: Instruction, env: Mapping[str, str], *, escape: str = "\\"
) -> list[tuple[str, str | None]]:
    """ENV / LABEL / ARG as (key, value) pairs, both expanded with ``env``.

    ``ARG name`` gives ``(name, None)``. Every pair of one instruction sees the same ``env``
    (Docker: ``ENV a=1 b=$a`` gives b the *previous* a).
    """
    args = instruction.args
    with _at(instruction.line):
        if instruction.keyword in ("ENV", "LABEL"):
            return [
                (expand(key, env, escape=escape), expand(value, env, escape=escape))
                for key, value in zip(args[0::2], args[1::2], strict=True)
            ]
        if instruction.keyword == "ARG":
            pairs: list[tuple[str, str | None]] = []
            for word in args:
                key, sep, value = word.partition("=")
                pairs.append(
                    (
                        expand(key, env, escape=escape),
                        expand(value, env, escape=escape) if sep else None,
                    )
                )
            return pairs
    raise DockerfileError(f"{instruction.keyword} has no key=value arguments", instruction.line)


def expand_arguments(
    instruction: Instruction, env: Mapping[str, str], *, escape: str = "\\"
) -> list[str]:
    """The arguments as Docker expands them: each of :attr:`Instruction.args` as one word.

    For ADD/COPY (sources and destination; heredoc markers stay as written), VOLUME, EXPOSE,
    USER, WORKDIR, STOPSIGNAL, FROM's image: Docker splits the raw text (JSON array or
    spaces) first, then expands each part, so ``WORKDIR /a b`` is the one path ``/a b``.
    """
    copies = instruction.keyword in ("ADD", "COPY")
    with _at(instruction.line):
        return [
            arg if copies and _must_heredoc(arg) else expand(arg, env, escape=escape)
            for arg in instruction.args
        ]


def sources_and_dest(
    instruction: Instruction, env: Mapping[str, str], *, escape: str = "\\"
) -> tuple[list[str | Heredoc], str]:
    """COPY/ADD: the sources, each an expanded path or a heredoc (content ready), and the dest."""
    docs = {doc.name: doc for doc in instruction.heredocs}
    sources: list[str | Heredoc] = []
    with _at(instruction.line):
        for arg in instruction.args[:-1]:
            marker = _must_heredoc(arg)
            if marker is None:
                sources.append(expand(arg, env, escape=escape))
                continue
            doc = docs.get(marker.name, marker)
            content = expand_heredoc(doc, env)
            sources.append(Heredoc(doc.name, content, doc.expand, doc.chomp, doc.fd))
        dest = expand(instruction.args[-1], env, escape=escape)
    return sources, dest


def run_script(instruction: Instruction) -> Heredoc | None:
    """A RUN of a single heredoc whose body starts with ``#!``: Docker runs it as a file.

    The builder writes the body (mode 0755) to ``/dev/pipes/<name>`` for the RUN, and
    :func:`command_line` returns that path as the command.
    """
    if instruction.keyword != "RUN" or instruction.exec_form is not None:
        return None
    if not instruction.heredocs or _must_heredoc(instruction.arguments) is None:
        return None
    first = instruction.heredocs[0]
    return first if first.content.startswith("#!") else None


def command_line(instruction: Instruction, shell: Sequence[str] = DEFAULT_SHELL) -> list[str]:
    """RUN / CMD / ENTRYPOINT / HEALTHCHECK CMD: the command as Docker runs it.

    The exec form as is; the shell form as ``shell + [text]``. A RUN that is only a heredoc
    marker runs the body with the shell (or as a script, see :func:`run_script`); a RUN with
    heredocs among other words gets the bodies back after its line, for the shell to read.
    """
    if instruction.exec_form is not None:
        return list(instruction.exec_form)
    if instruction.keyword == "HEALTHCHECK":
        args = instruction.args
        if not args or args[0].upper() == "NONE":
            return []
        return [*shell, *args[1:]]
    text = instruction.arguments
    if instruction.keyword == "RUN" and instruction.heredocs:
        script = run_script(instruction)
        if script is not None:
            return [f"/dev/pipes/{script.name}"]
        if _must_heredoc(text) is not None:
            return [*shell, instruction.heredocs[0].content]
        text += "".join(f"\n{doc.content}{doc.name}" for doc in instruction.heredocs)
    return [*shell, text] if text else list(shell)


# --------------------------------------------------------------------------------------
# HEALTHCHECK.


def _go_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` in nanoseconds, its errors as this file's."""
    try:
        return parse_duration_ns(text)
    except InvalidParameter as e:
        raise DockerfileError(e.message) from None


def _interval(instruction: Instruction, name: str) -> int:
    value = instruction.flag(name)
    if not value:
        return 0
    nanoseconds = _go_duration(value)
    if nanoseconds == 0:
        return 0
    _require(nanoseconds >= 1_000_000, f"Interval {_quote(name)} cannot be less than 1ms")
    return nanoseconds


def healthcheck(instruction: Instruction) -> dict[str, object]:
    """HEALTHCHECK as the image config's ``Healthcheck`` (durations in nanoseconds)."""
    args = instruction.args
    kind = args[0].upper()
    if kind == "NONE":
        return {"Test": ["NONE"]}
    with _at(instruction.line):
        if kind != "CMD":
            raise DockerfileError(f"Unknown type {_quote(kind)} in HEALTHCHECK (try CMD)")
        _require(len(args) > 1, "Missing command after HEALTHCHECK CMD")
        test = ["CMD", *args[1:]] if instruction.exec_form is not None else ["CMD-SHELL", args[1]]
        config: dict[str, object] = {"Test": test}
        for flag, key in (
            ("interval", "Interval"),
            ("timeout", "Timeout"),
            ("start-period", "StartPeriod"),
            ("start-interval", "StartInterval"),
        ):
            config[key] = _interval(instruction, flag)
        config["Retries"] = _retries(instruction.flag("retries"))
    return config


def _retries(value: str | None) -> int:
    if not value:
        return 0
    if re.fullmatch(r"[+-]?[0-9]+", value) is None:
        raise DockerfileError(f"strconv.ParseInt: parsing {_quote(value)}: invalid syntax")
    retries = int(value)
    if not -(2**31) <= retries < 2**31:
        raise DockerfileError(f"strconv.ParseInt: parsing {_quote(value)}: value out of range")
    _require(retries >= 0, f"--retries cannot be negative ({retries})")
    return retries
