"""What the commands share: the global state, the options every listing command has
(``--filter``, ``--format``) with the parsers of their values, and docker's (pflag's) way
of reading boolean and integer flags."""

from __future__ import annotations

import calendar
import csv
import functools
import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import click

from pydocker.api import APIClient
from pydocker.errors import InvalidArgument, PydockerError, TemplateError
from pydocker.formatting import Template

__all__ = [
    "Checked",
    "DockerCommand",
    "FlagError",
    "GoCommand",
    "GoInt",
    "State",
    "filter_option",
    "filters_param",
    "flag_name",
    "format_option",
    "go_parse_int",
    "parse_filters",
    "parse_go_bool",
    "parse_time",
    "pass_client",
    "pass_state",
    "repeated_option",
    "string_slice",
]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

# A Go duration (time.ParseDuration): "10m", "1h30m", "1.5h", "-2s", "300ms".
_GO_DURATION = re.compile(r"[-+]?(?:\d*\.?\d+(?:ns|us|µs|μs|ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d*\.?\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_BASE_PREFIXES = {"b": 2, "o": 8, "x": 16}
_UNIX_TIME = re.compile(r"\d+(?:\.\d{1,9})?")
_GO_BOOLS = {
    "1": True,
    "t": True,
    "T": True,
    "true": True,
    "TRUE": True,
    "True": True,
    "0": False,
    "f": False,
    "F": False,
    "false": False,
    "FALSE": False,
    "False": False,
}


class State:
    """What the global options decide (``ctx.obj``): the daemon's address, and a client
    made on first use so that commands which fail early never connect."""

    def __init__(self, host: str, log_level: str = "info") -> None:
        self.host = host
        self.log_level = log_level
        self._client: APIClient | None = None

    @property
    def debug(self) -> bool:
        return self.log_level == "debug"

    @property
    def client(self) -> APIClient:
        if self._client is None:
            self._client = APIClient(self.host)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _state() -> State:
    state = click.get_current_context().find_object(State)
    if state is None:
        raise RuntimeError("pydocker commands run under the pydocker group")
    return state


def pass_state(func: Callable[Concatenate[State, P], R]) -> Callable[P, R]:
    """Give a command the :class:`State` as its first argument."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return func(_state(), *args, **kwargs)

    return wrapper


def pass_client(func: Callable[Concatenate[APIClient, P], R]) -> Callable[P, R]:
    """Give a command the :class:`~pydocker.api.APIClient` as its first argument."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return func(_state().client, *args, **kwargs)

    return wrapper


class FlagError(click.UsageError):
    """A malformed flag value, in docker's words; the CLI exits 125 as docker does."""

    def __init__(self, value: str, flag: str, reason: str) -> None:
        super().__init__(f'invalid argument "{value}" for "{flag}" flag: {reason}')


def flag_name(param: click.Parameter) -> str:
    """A flag as docker names it in errors: ``-c, --cpu-shares``."""
    return ", ".join(sorted(param.opts, key=lambda name: name.startswith("--")))


def parse_go_bool(value: str, flag: str) -> bool:
    """``strconv.ParseBool``.

    :raises FlagError: anything else, with docker's message.
    """
    if value not in _GO_BOOLS:
        raise FlagError(value, flag, f'strconv.ParseBool: parsing "{value}": invalid syntax')
    return _GO_BOOLS[value]


def go_parse_int(text: str, bits: int = 64, base: int = 10, signed: bool = True) -> int:
    """``strconv.ParseInt`` / ``ParseUint``, with Go's error text. ``base`` 0 reads Go's
    integer literals, as pflag's int flags do: ``0x``, ``0o``, ``0b`` prefixes, a leading
    ``0`` for octal, ``_`` between digits. As in Go, a value that overflows is out of range
    even when a bad character follows it."""
    function = "ParseInt" if signed else "ParseUint"
    invalid = ValueError(f'strconv.{function}: parsing "{text}": invalid syntax')
    out_of_range = ValueError(f'strconv.{function}: parsing "{text}": value out of range')
    digits, negative = text, False
    if signed and digits[:1] in ("+", "-"):
        digits, negative = digits[1:], digits[0] == "-"
    if not digits:
        raise invalid
    literal = digits
    underscores_allowed = base == 0
    if base == 0:
        base = 10
        if digits[0] == "0":
            if len(digits) >= 3 and digits[1] in "bBoOxX":
                base, digits = _BASE_PREFIXES[digits[1].lower()], digits[2:]
            else:
                base, digits = 8, digits[1:]
    largest = 2**bits - 1
    number, underscores = 0, False
    for char in digits:
        if char == "_" and underscores_allowed:
            underscores = True
            continue
        if "0" <= char <= "9":
            digit = ord(char) - ord("0")
        elif char.isascii() and "a" <= char.lower() <= "z":
            digit = ord(char.lower()) - ord("a") + 10
        else:
            raise invalid
        if digit >= base:
            raise invalid
        number = number * base + digit
        if number > largest:
            raise out_of_range
    if underscores and not _underscores_ok(literal):
        raise invalid
    if signed and number > 2 ** (bits - 1) - (0 if negative else 1):
        raise out_of_range
    return -number if negative else number


def _underscores_ok(literal: str) -> bool:
    """Go's ``underscoreOK``: every ``_`` of an unsigned integer literal is between digits
    (or after the base prefix)."""
    hexadecimal = len(literal) >= 2 and literal[0] == "0" and literal[1] in "xX"
    prefixed = len(literal) >= 2 and literal[0] == "0" and literal[1] in "bBoOxX"
    saw = "0" if prefixed else "^"  # the last: a digit (or the prefix), "_", or another
    for char in literal[2:] if prefixed else literal:
        if "0" <= char <= "9" or (hexadecimal and char.lower() in "abcdef"):
            saw = "0"
        elif char == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


class Checked(click.ParamType[Any]):
    """A flag value checked (and converted) by ``check``; its ``ValueError`` becomes docker's
    ``invalid argument "<value>" for "<flag>" flag: <reason>``."""

    def __init__(self, name: str, check: Callable[[str], Any]) -> None:
        self.name = name
        self._check = check

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._check(value)
        except ValueError as e:
            raise FlagError(value, flag_name(param) if param else "value", str(e)) from None


class GoInt(Checked):
    """A 64-bit integer flag (pflag's ``Int``/``Int64``): read as ``strconv.ParseInt(s, 0,
    64)`` reads it (``1_000``, ``0x10``, ``010`` are Go literals) and refused in docker's
    words (``strconv.ParseInt: parsing " 5": invalid syntax``)."""

    def __init__(self) -> None:
        super().__init__("int", lambda text: go_parse_int(text, base=0))


def string_slice(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    """pflag's ``StringSlice``: each value is a line of CSV (``a,b`` is two items, ``""``
    none), all of them in order."""
    items: list[str] = []
    for value in values:
        if not value:
            continue
        try:
            items += next(csv.reader([value], strict=True), [])
        except csv.Error as e:
            raise FlagError(value, flag_name(param), str(e)) from None
    return items


def repeated_option(
    *names: str, help: str, slice_: bool = False, **settings: Any
) -> Callable[[F], F]:
    """A flag that can be given more than once (the command receives every value);
    ``slice_`` reads each value as pflag's ``StringSlice`` does (:func:`string_slice`)."""
    if slice_:
        settings["callback"] = string_slice
    return click.option(*names, multiple=True, help=help, **settings)


class GoCommand(click.Command):
    """A command whose boolean flags also take a value, as docker's do: ``--rm=false``,
    ``-t=true``, ``--sig-proxy=false`` (a flag that is on by default needs a secondary
    name, ``--sig-proxy/--no-sig-proxy``, for its false). Parsing stops rewriting at ``--``
    and, for a command that takes no options after its arguments, at the first argument."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, self._rewrite(ctx, args))
        except click.UsageError as e:
            if e.ctx is None:  # a value refused while rewriting: show the usage too
                e.ctx = ctx
            raise

    def _rewrite(self, ctx: click.Context, args: list[str]) -> list[str]:
        options = {
            name: param
            for param in self.get_params(ctx)
            if isinstance(param, click.Option)
            for name in (*param.opts, *param.secondary_opts)
        }
        rewritten: list[str] = []
        index = 0
        while index < len(args):
            arg = args[index]
            index += 1
            if arg == "--" or not arg.startswith("-") or arg == "-":
                if arg == "--" or not ctx.allow_interspersed_args:
                    rewritten += [arg, *args[index:]]
                    break
                rewritten.append(arg)
                continue
            name, separator, value = arg.partition("=")
            param = options.get(name)
            if separator and isinstance(param, click.Option) and param.is_flag:
                rewritten += self._flag(param, name, value)
                continue
            rewritten.append(arg)
            if self._takes_next(arg, options, separator) and index < len(args):
                rewritten.append(args[index])
                index += 1
        return rewritten

    @staticmethod
    def _flag(param: click.Option, name: str, value: str) -> list[str]:
        on = parse_go_bool(value, flag_name(param))
        if name in param.secondary_opts:
            on = not on
        if on:
            return [param.opts[0]]
        return [param.secondary_opts[0]] if param.secondary_opts else []

    @staticmethod
    def _takes_next(arg: str, options: Mapping[str, click.Option], separator: str) -> bool:
        """Whether the word after ``arg`` is its value (``-p 80``, ``-dp 80``, not
        ``-p80`` or ``--publish=80``)."""
        if arg.startswith("--"):
            param = options.get(arg)
            return not separator and param is not None and not param.is_flag
        for position, letter in enumerate(arg[1:], start=1):
            param = options.get(f"-{letter}")
            if param is not None and not param.is_flag:
                return position == len(arg) - 1
        return False


class DockerCommand(GoCommand):
    """A :class:`GoCommand` that counts its arguments as docker's (cobra's ``Args``
    validators) do: too few or too many is ``pydocker: 'pydocker network create' requires 1
    argument``, the usage and where the help is, and status 1, not click's usage error
    (125). The rule follows from the arguments: none accepts no arguments, only optional
    ones at most their number, a ``nargs=-1`` one requires at least the required ones,
    otherwise exactly their number."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.MissingParameter as e:
            if not isinstance(e.param, click.Argument):
                raise
        except click.UsageError as e:
            if not e.message.startswith("Got unexpected extra argument"):
                raise
        raise self._count_error(ctx) from None

    def _count_error(self, ctx: click.Context) -> PydockerError:
        arguments = [p for p in self.get_params(ctx) if isinstance(p, click.Argument)]
        required = sum(max(p.nargs, 1) for p in arguments if p.required)
        plural = "argument" if required == 1 else "arguments"
        verb = "Run"
        if not arguments:
            rule = "accepts no arguments"
        elif not required:  # only optional ones: cobra's RequiresMaxArgs
            most = sum(max(p.nargs, 1) for p in arguments)
            rule, verb = f"requires at most {most} argument{'s' * (most != 1)}", "See"
        elif any(p.nargs == -1 for p in arguments):
            rule, verb = f"requires at least {required} {plural}", "See"
        else:
            rule = f"requires {required} {plural}"
        parent = ctx.parent.command_path if ctx.parent is not None else ""
        path = f"{parent} {self.name}".strip()  # docker names a command, not its alias
        usage = ctx.get_usage().replace(f"Usage: {ctx.command_path}", f"Usage:  {path}", 1)
        program = path.split(" ", 1)[0]
        return PydockerError(
            f"{program}: '{path}' {rule}\n\n{usage}\n\n{verb} '{path} --help' for more information"
        )


def parse_filters(
    values: tuple[str, ...], flag: str = "-f, --filter"
) -> dict[str, dict[str, bool]]:
    """``key=value`` flags → the API's map form ``{"key": {"value": true}}``. Keys are
    lower-cased and both sides trimmed, as docker's ``filters.ParseFlag`` does.

    :raises FlagError: a value without ``=`` or with an empty key.
    """
    filters: dict[str, dict[str, bool]] = {}
    for item in values:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise FlagError(item, flag, "bad format of filter (expected name=value)")
        filters.setdefault(key.strip().lower(), {})[value.strip()] = True
    return filters


def filters_param(filters: dict[str, dict[str, bool]]) -> dict[str, str]:
    """The ``filters=`` query parameter (keys sorted, as Go marshals a map), or nothing
    when there is no filter."""
    if not filters:
        return {}
    return {"filters": json.dumps(filters, separators=(",", ":"), sort_keys=True)}


def filter_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-f/--filter key=value``, repeatable; the command receives the map form."""

    def callback(
        ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
    ) -> dict[str, dict[str, bool]]:
        return parse_filters(value, ", ".join(param.opts))

    return click.option(
        "-f",
        "--filter",
        "filters",
        multiple=True,
        metavar="FILTER",
        callback=callback,
        help=help_text,
    )


def format_option(
    *, short: bool = False, error_prefix: str = "template parsing error", error_status: int = 64
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--format`` (and ``-f`` when ``short``), parsed into a
    :class:`~pydocker.formatting.Template` before anything is sent. A template that does not
    parse fails with ``<error_prefix>: ...`` and ``error_status``; docker's wording and
    status differ per command, so each command passes its own."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Template | None:
        if not value:
            return None
        try:
            return Template.parse(value)
        except TemplateError as e:
            raise TemplateError(f"{error_prefix}: {e}", error_status) from None

    names = ("-f", "--format") if short else ("--format",)
    return click.option(
        *names,
        "template",
        metavar="FORMAT",
        callback=callback,
        help="Format output: 'json', a template such as '{{.Name}}' or '{{json .}}', "
        "or 'table {{.A}}\\t{{.B}}'.",
    )


def parse_time(value: str, now: float | None = None) -> str:
    """A ``--since``/``--until`` value as the API takes it, following docker's
    ``GetTimestamp``: unix seconds pass through; a Go duration (``10m``, ``1h30m``) means
    that long before ``now``; an RFC 3339 time or date (local time when it has no zone) is
    converted to ``seconds.nanoseconds``.

    One deliberate difference: docker truncates ``now - duration`` to whole seconds, which
    drops events of the current second from ``--until 0s``; this keeps the fraction.

    :raises InvalidArgument: none of those (docker's message, exit status 1).
    """
    if _UNIX_TIME.fullmatch(value):
        return value
    if value != "0" and _GO_DURATION.fullmatch(value):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))
        if value.startswith("-"):
            seconds = -seconds
        return f"{(time.time() if now is None else now) - seconds:.9f}"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f'failed to parse value as time or duration: "{value}"') from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # no zone: local time, as docker reads it
    return f"{calendar.timegm(moment.utctimetuple())}.{moment.microsecond * 1000:09d}"
