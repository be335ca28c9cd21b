"""The Dockerfile front end (build/dockerfile.py): Docker's parser, lexer and their errors.

The cases restate the behaviour of moby/buildkit's parser, instructions and shell lexer
(and docs.docker.com's Dockerfile reference) with inputs of our own.
"""

from __future__ import annotations

import json
import time

import pytest
from pydockerd.builder.dockerfile import (
    Dockerfile,
    DockerfileError,
    Heredoc,
    Instruction,
    command_line,
    expand,
    expand_arguments,
    expand_heredoc,
    expand_words,
    healthcheck,
    key_values,
    parse,
    parse_instruction,
    run_script,
    sources_and_dest,
)
from pydockerd.errors import InvalidParameter

SH = ("/bin/sh", "-c")


def only(text: str) -> Instruction:
    """The one instruction after ``FROM scratch``."""
    (instruction,) = parse("FROM scratch\n" + text).stages[0].instructions
    return instruction


def error_of(text: str) -> str:
    with pytest.raises(DockerfileError) as caught:
        parse(text)
    return str(caught.value)


# --- lines: comments, continuations, directives -------------------------------------------


@pytest.mark.parametrize(
    ("text", "arguments"),
    [
        ("RUN a \\\n  b", "a   b"),  # the continuation line keeps its leading spaces
        ("RUN a\\\nb", "ab"),
        ("RUN a \\  \t\n b", "a  b"),  # spaces after the escape still continue
        ("RUN a \\\n# a comment\n  b", "a   b"),  # comment lines inside are dropped
        ("RUN a \\\n    # indented comment\n b", "a  b"),
        ("RUN a \\\n\n b", "a  b"),  # empty continuation line: skipped (with a warning)
        ("RUN a \\\n b # not a comment", "a  b # not a comment"),
        ("RUN a \\\\", "a \\\\"),  # an escaped escape does not continue
        ("RUN a \\", "a"),  # continuation at the end of the file
        ("   RUN    a   ", "a"),
        ("RUN a\r\n", "a"),
        ("run a", "a"),
        ("RUN \\\n a", "a"),
    ],
)
def test_continuations(text: str, arguments: str) -> None:
    assert only(text).arguments == arguments


def test_empty_continuation_line_warns() -> None:
    dockerfile = parse("FROM a\nRUN x \\\n\n y\n")
    assert dockerfile.warnings[0].startswith("[WARNING]: Empty continuation line found in:")


def test_comments_and_blank_lines_are_skipped_and_lines_counted() -> None:
    dockerfile = parse("\n# one\n   # two\nFROM a\n\n\tRUN b\n#RUN c\n")
    (run,) = dockerfile.stages[0].instructions
    assert (dockerfile.stages[0].from_instruction.line, run.line) == (4, 6)


def test_instruction_spans_lines() -> None:
    run = only("RUN a \\\n b \\\n c")
    assert (run.line, run.end_line, run.original) == (2, 4, "RUN a  b  c")


def test_byte_order_mark_and_bytes() -> None:
    assert parse(b"\xef\xbb\xbfFROM a\n").stages[0].base == "a"


@pytest.mark.parametrize(
    ("text", "escape", "syntax"),
    [
        ("# escape=`\nFROM a\n", "`", None),
        ("#ESCAPE = `\nFROM a\n", "`", None),
        ("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\n", "`", "docker/dockerfile:1"),
        ("  # escape=`\nFROM a\n", "`", None),
        # a directive after a comment, a blank line or an instruction is a comment
        ("# hello\n# escape=`\nFROM a\n", "\\", None),
        ("\n# escape=`\nFROM a\n", "\\", None),
        ("FROM a\n# escape=`\n", "\\", None),
        ("# unknown=x\n# escape=`\nFROM a\n", "\\", None),
        ("# escape=\\\nFROM a\n", "\\", None),
    ],
)
def test_directives(text: str, escape: str, syntax: str | None) -> None:
    dockerfile = parse(text)
    assert (dockerfile.escape, dockerfile.syntax) == (escape, syntax)


def test_backtick_escape_continues_lines_and_leaves_backslash() -> None:
    dockerfile = parse("# escape=`\nFROM a\nCOPY c:\\dir `\n  d:\\\n")
    (copy,) = dockerfile.stages[0].instructions
    assert copy.args == ("c:\\dir", "d:\\")
    assert expand("a`$b\\c", {}, escape="`") == "a$b\\c"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# escape=x\nFROM a", "invalid escape token 'x' does not match ` or \\"),
        ("# escape=`\n# escape=`\nFROM a", "only one escape parser directive can be used"),
    ],
)
def test_directive_errors(text: str, message: str) -> None:
    assert message in error_of(text)


# --- keywords, forms, flags -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "exec_form", "args"),
    [
        ('CMD ["a", "b c"]', ("a", "b c"), ("a", "b c")),
        ('CMD  [ "a" ]  ', ("a",), ("a",)),
        ("CMD []", (), ()),
        ('CMD ["a", "b"', None, ('["a", "b"',)),  # invalid JSON: shell form
        ("CMD ['a']", None, ("['a']",)),  # single quotes are no JSON
        ('CMD ["a"] x', None, ('["a"] x',)),
        ('ENTRYPOINT ["a\\u0041"]', ("aA",), ("aA",)),
        ("CMD [NaN]", None, ("[NaN]",)),
        ('COPY ["a b", "/c"]', ("a b", "/c"), ("a b", "/c")),
        ("COPY a  b\t/c", None, ("a", "b", "/c")),
        ('VOLUME ["/a", "/b"]', ("/a", "/b"), ("/a", "/b")),
        ("VOLUME /a /b", None, ("/a", "/b")),
        ("USER a b", None, ("a b",)),
        ("WORKDIR /a b", None, ("/a b",)),
        ("EXPOSE 80 443/tcp", None, ("80", "443/tcp")),
    ],
)
def test_exec_and_shell_forms(
    text: str, exec_form: tuple[str, ...] | None, args: tuple[str, ...]
) -> None:
    instruction = only(text)
    assert (instruction.exec_form, instruction.args) == (exec_form, args)


@pytest.mark.parametrize("text", ['RUN ["a", 1]', "CMD [true]", 'COPY ["a", null]', "SHELL [{}]"])
def test_json_arrays_of_non_strings_are_refused(text: str) -> None:
    assert "arrays must be comprised of strings only" in error_of("FROM a\n" + text)


@pytest.mark.parametrize(
    ("text", "flags"),
    [
        ("COPY --from=build a b", (("from", "build"),)),
        ("COPY --chown=1:1 --chmod=755 a b", (("chown", "1:1"), ("chmod", "755"))),
        ("COPY --link a b", (("link", "true"),)),
        ("COPY --link=FALSE a b", (("link", "false"),)),
        ('COPY --from="my stage" a b', (("from", "my stage"),)),
        ("COPY --chown=a\\ b a b", (("chown", "a b"),)),
        ("COPY --exclude=*.md --exclude=x a b", (("exclude", "*.md"), ("exclude", "x"))),
        (
            "ADD --checksum=sha256:00 --keep-git-dir a b",
            (("checksum", "sha256:00"), ("keep-git-dir", "true")),
        ),
        (
            "RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t --network=none x",
            (
                ("mount", "type=cache,target=/c"),
                ("mount", "type=tmpfs,target=/t"),
                ("network", "none"),
            ),
        ),
        (
            "HEALTHCHECK --interval=5s --timeout=3s --start-period=1s --start-interval=1s"
            " --retries=3 CMD x",
            (
                ("interval", "5s"),
                ("timeout", "3s"),
                ("start-period", "1s"),
                ("start-interval", "1s"),
                ("retries", "3"),
            ),
        ),
        ("RUN -- --mount=x", ()),  # "--" ends the flags
    ],
)
def test_flags(text: str, flags: tuple[tuple[str, str], ...]) -> None:
    assert only(text).flags == flags


def test_flag_lookup() -> None:
    run = only("RUN --mount=a --mount=b --network=host x")
    assert (run.flag("mount"), run.flags_named("mount"), run.flag("security")) == (
        "b",
        ["a", "b"],
        None,
    )
    assert only("RUN -- --mount=x").arguments == "--mount=x"


def test_from_platform_and_stage() -> None:
    stage = parse("FROM --platform=linux/arm64 alpine:3 AS Base\n").stages[0]
    assert (stage.name, stage.base, stage.platform) == ("base", "alpine:3", "linux/arm64")
    assert stage.from_instruction.original == "FROM --platform=linux/arm64 alpine:3 AS Base"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("COPY --foo=1 a b", "Unknown flag: foo"),
        ("RUN --from=x a", "Unknown flag: from"),
        ("ENV --x a=b", "Unknown flag: x"),
        ("MAINTAINER --boo joe", "Unknown flag: boo"),
        ("COPY --from a b", "Missing a value on flag: from"),
        ("COPY --link= a b", "Missing a value on flag: link"),
        ("COPY --link=yes a b", "Expecting boolean value for flag link, not: yes"),
        ("COPY --from=a --from=b a b", "Duplicate flag specified: from"),
        ("RUN --network=a --network=b x", "Duplicate flag specified: network"),
    ],
)
def test_flag_errors(text: str, message: str) -> None:
    assert error_of("FROM a\n" + text) == f"Dockerfile parse error on line 2: {message}"


def test_flags_are_not_checked_where_docker_does_not() -> None:
    assert only("STOPSIGNAL --x SIGTERM").flags == (("x", "true"),)
    assert only("HEALTHCHECK --retries=x NONE").args == ("NONE",)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM a\nFOO bar", "Dockerfile parse error on line 2: unknown instruction: FOO"),
        ("FROM a\nfoo", "Dockerfile parse error on line 2: unknown instruction: FOO"),
        ("RUN x", "Dockerfile parse error on line 1: no build stage in current context"),
        (
            "ARG a\nENV b=c\nFROM x",
            "Dockerfile parse error on line 2: no build stage in current context",
        ),
        ("ARG a", "dockerfile contains no stages to build"),
        ("", "file with no instructions"),
        ("# only\n\n# comments\n", "file with no instructions"),
        ("FROM", "Dockerfile parse error on line 1: FROM requires either one or three arguments"),
        (
            "FROM a b",
            "Dockerfile parse error on line 1: FROM requires either one or three arguments",
        ),
        (
            "FROM a AS",
            "Dockerfile parse error on line 1: FROM requires either one or three arguments",
        ),
        (
            "FROM a TO b",
            "Dockerfile parse error on line 1: FROM requires either one or three arguments",
        ),
        (
            "FROM a AS 1st",
            'Dockerfile parse error on line 1: invalid name for build stage: "1st", '
            "name can't start with a number or contain symbols",
        ),
        (
            "FROM a AS b$c",
            'Dockerfile parse error on line 1: invalid name for build stage: "b$c", '
            "name can't start with a number or contain symbols",
        ),
        ("FROM a AS x\nFROM b as X", 'Dockerfile parse error on line 2: duplicate stage name "x"'),
        # a line-pass error (ENV syntax) beats an instruction-pass one on an earlier line
        ("FROM a\nFOO\nENV x", "Dockerfile parse error on line 3: ENV must have two arguments"),
    ],
)
def test_errors(text: str, message: str) -> None:
    assert error_of(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ENV", "ENV requires at least one argument"),
        ("LABEL", "LABEL requires at least one argument"),
        ("ARG", "ARG requires at least one argument"),
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("VOLUME", "VOLUME requires at least one argument"),
        ("VOLUME []", "VOLUME requires at least one argument"),
        ("ONBUILD", "ONBUILD requires at least one argument"),
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("ENV \\", "ENV requires at least one argument"),
        ("USER", "USER requires exactly one argument"),
        ("WORKDIR", "WORKDIR requires exactly one argument"),
        ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
        ("MAINTAINER", "MAINTAINER requires exactly one argument"),
        (
            "COPY a",
            "COPY requires at least two arguments, but only one was provided. "
            "Destination could not be determined",
        ),
        (
            "ADD a",
            "ADD requires at least two arguments, but only one was provided. "
            "Destination could not be determined",
        ),
        ("ENV a", "ENV must have two arguments"),
        ("LABEL a", "LABEL must have two arguments"),
        ("ENV =b", "ENV names can not be blank"),
        ("ARG =b", "ARG names can not be blank"),
        ("ENV a=b c", 'Syntax error - can\'t find = in "c". Must be of the form: name=value'),
        ("SHELL /bin/bash -c", "SHELL requires the arguments to be in JSON form"),
        ("SHELL []", "SHELL requires at least one argument"),
        ('VOLUME ["/a", ""]', "VOLUME specified can not be an empty string"),
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM a", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD maintainer me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK RUN x", 'Unknown type "RUN" in HEALTHCHECK (try CMD)'),
        ("HEALTHCHECK --interval=1us CMD x", 'Interval "interval" cannot be less than 1ms'),
        ("HEALTHCHECK --timeout=5 CMD x", 'time: missing unit in duration "5"'),
        ("HEALTHCHECK --timeout=5y CMD x", 'time: unknown unit "y" in duration "5y"'),
        ("HEALTHCHECK --timeout=x CMD x", 'time: invalid duration "x"'),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
        ("HEALTHCHECK --retries=x CMD x", 'strconv.ParseInt: parsing "x": invalid syntax'),
        ("COPY a <<EOF\nx\nEOF", "COPY cannot accept a heredoc as a destination"),
        ("RUN <<EOF\nnever ends", "unterminated heredoc"),
    ],
)
def test_instruction_errors(text: str, message: str) -> None:
    assert error_of("FROM a\n" + text) == f"Dockerfile parse error on line 2: {message}"


@pytest.mark.parametrize("text", ["RUN", "CMD", "ENTRYPOINT", "RUN []", "MAINTAINER me <me@x>"])
def test_accepted_as_docker_accepts_them(text: str) -> None:
    only(text)


def test_error_is_invalid_parameter_with_line() -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse("FROM a\n\nBAD x")
    assert isinstance(caught.value, DockerfileError)
    assert (caught.value.line, caught.value.reason) == (3, "unknown instruction: BAD")


# --- heredocs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "heredocs"),
    [
        ("RUN <<EOF\necho hi\nEOF", (Heredoc("EOF", "echo hi\n", True, False),)),
        ("RUN <<EOF\nEOF", (Heredoc("EOF", "", True, False),)),
        ("RUN <<'EOF'\n$x\nEOF", (Heredoc("EOF", "$x\n", False, False),)),
        ('RUN <<"EOF"\n$x\nEOF', (Heredoc("EOF", "$x\n", False, False),)),
        ('RUN <<E"O"F\nx\nEOF', (Heredoc("EOF", "x\n", False, False),)),
        ("RUN <<-EOF\n\t\tindented\n\tEOF", (Heredoc("EOF", "indented\n", True, True),)),
        ("RUN <<EOF\n\tkept\n\tEOF\nEOF", (Heredoc("EOF", "\tkept\n\tEOF\n", True, False),)),
        ("RUN 3<<EOF\nx\nEOF", (Heredoc("EOF", "x\n", True, False, 3),)),
        (
            "RUN <<A cat - <<B\na\nA\nb\nB",
            (Heredoc("A", "a\n", True, False), Heredoc("B", "b\n", True, False)),
        ),
        ("RUN <<EOF\r\nwin\r\nEOF\r\n", (Heredoc("EOF", "win\r\n", True, False),)),
        ('RUN echo "<<EOF"', ()),  # quoted: no heredoc
        ("RUN cat<<EOF", ()),  # not a word of its own
        ("RUN echo <<", ()),
        ('RUN ["cat", "<<EOF"]', ()),  # exec form: no heredoc
    ],
)
def test_heredocs(text: str, heredocs: tuple[Heredoc, ...]) -> None:
    assert only(text).heredocs == heredocs


def test_heredoc_body_is_not_parsed_as_instructions() -> None:
    dockerfile = parse("FROM a\nCOPY <<EOF /etc/x\nFROM b\nRUN nope\nEOF\nRUN after\n")
    (copy, run) = dockerfile.stages[0].instructions
    assert (len(dockerfile.stages), copy.heredocs[0].content, run.line) == (
        1,
        "FROM b\nRUN nope\n",
        6,
    )
    assert (copy.line, copy.end_line, copy.original) == (2, 5, "COPY <<EOF /etc/x")


def test_heredoc_after_continuation() -> None:
    run = only("RUN cat \\\n  <<EOF\nbody\nEOF")
    assert (run.arguments, run.heredocs[0].content) == ("cat   <<EOF", "body\n")


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("RUN <<EOF\necho a\necho b\nEOF", [*SH, "echo a\necho b\n"]),
        ("RUN <<-EOF\n\techo a\n\tEOF", [*SH, "echo a\n"]),
        ("RUN cat <<EOF > /f\nx\nEOF", [*SH, "cat <<EOF > /f\nx\nEOF"]),
        ("RUN <<A <<B\na\nA\nb\nB", [*SH, "<<A <<B\na\nA\nb\nB"]),
        ("RUN <<EOF\n#!/usr/bin/env python\nprint(1)\nEOF", ["/dev/pipes/EOF"]),
        ("RUN echo hi", [*SH, "echo hi"]),
        ('RUN ["echo", "hi"]', ["echo", "hi"]),
        ("RUN", list(SH)),
        ("CMD echo $HOME", [*SH, "echo $HOME"]),
        ('ENTRYPOINT ["/bin/app", "-x"]', ["/bin/app", "-x"]),
        ("HEALTHCHECK CMD curl -f x || exit 1", [*SH, "curl -f x || exit 1"]),
        ('HEALTHCHECK CMD ["curl", "x"]', ["curl", "x"]),
        ("HEALTHCHECK NONE", []),
    ],
)
def test_command_line(text: str, command: list[str]) -> None:
    assert command_line(only(text), SH) == command


def test_command_line_with_another_shell() -> None:
    assert command_line(only("RUN dir"), ["cmd", "/S", "/C"]) == ["cmd", "/S", "/C", "dir"]


def test_run_script() -> None:
    script = run_script(only("RUN <<EOF\n#!/bin/python3\nprint(1)\nEOF"))
    assert script is not None
    assert script.content == "#!/bin/python3\nprint(1)\n"
    assert run_script(only("RUN <<EOF\necho\nEOF")) is None
    assert run_script(only("RUN echo")) is None


def test_copy_heredoc_sources() -> None:
    copy = only('COPY <<A <<"B" src /dest/\n$X \\$X "q"\nA\n$X\nB')
    sources, dest = sources_and_dest(copy, {"X": "1"})
    assert dest == "/dest/"
    assert sources == [
        Heredoc("A", '1 $X "q"\n', True, False),
        Heredoc("B", "$X\n", False, False),
        "src",
    ]


def test_expand_heredoc() -> None:
    assert (
        expand_heredoc(Heredoc("E", "a $V 'b' \\$V\n", True, False), {"V": "v"}) == "a v 'b' $V\n"
    )
    assert expand_heredoc(Heredoc("E", "a $V\n", False, False), {"V": "v"}) == "a $V\n"


# --- ONBUILD --------------------------------------------------------------------------------


def test_onbuild_keeps_the_trigger() -> None:
    onbuild = only("ONBUILD RUN echo $HOME")
    assert (onbuild.keyword, onbuild.arguments, onbuild.trigger) == (
        "ONBUILD",
        "RUN echo $HOME",
        "RUN echo $HOME",
    )
    trigger = parse_instruction(onbuild.trigger, 7)
    assert (trigger.keyword, trigger.arguments, trigger.line) == ("RUN", "echo $HOME", 7)


def test_onbuild_with_heredoc_round_trips() -> None:
    onbuild = only("onbuild copy <<EOF /x\nbody\nEOF")
    assert onbuild.heredocs == (Heredoc("EOF", "body\n", True, False),)
    assert onbuild.trigger == "copy <<EOF /x\nbody\nEOF"
    assert parse_instruction(onbuild.trigger).heredocs == onbuild.heredocs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FOO bar", "Dockerfile parse error on line 1: unknown instruction: FOO"),
        (
            "RUN a\nRUN b",
            "Dockerfile parse error on line 1: onbuild trigger should be a single expression",
        ),
        ("FROM a", "Dockerfile parse error on line 1: FROM isn't allowed as an ONBUILD trigger"),
        ("COPY --bad=1 a b", "Dockerfile parse error on line 1: Unknown flag: bad"),
    ],
)
def test_parse_instruction_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as caught:
        parse_instruction(text)
    assert str(caught.value) == message


# --- ENV / LABEL / ARG ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "pairs"),
    [
        ("ENV a=1", {}, [("a", "1")]),
        (
            "ENV a=1 b=\"two words\" c='$x' d=$x",
            {"x": "X"},
            [("a", "1"), ("b", "two words"), ("c", "$x"), ("d", "X")],
        ),
        ("ENV a b c", {}, [("a", "b c")]),  # legacy form: one pair
        ("ENV a  b   c", {}, [("a", "b   c")]),
        ("ENV a=", {}, [("a", "")]),
        ('ENV a=""', {}, [("a", "")]),
        ("ENV a=x\\ y", {}, [("a", "x y")]),
        ("ENV a=1 b=$a", {"a": "old"}, [("a", "1"), ("b", "old")]),  # same instruction: old value
        ("ENV P=$P:/bin", {"P": "/usr"}, [("P", "/usr:/bin")]),
        ("ENV a=${b:-def}", {}, [("a", "def")]),
        ('LABEL "com.x.y"="v 1" k=v', {}, [("com.x.y", "v 1"), ("k", "v")]),
        ("LABEL k v", {}, [("k", "v")]),
        ("ARG a", {}, [("a", None)]),
        ("ARG a=1 b c=$x", {"x": "X"}, [("a", "1"), ("b", None), ("c", "X")]),
        ('ARG a="x y"', {}, [("a", "x y")]),
        ("ARG a=", {}, [("a", "")]),
    ],
)
def test_key_values(text: str, env: dict[str, str], pairs: list[tuple[str, str | None]]) -> None:
    assert key_values(only(text), env) == pairs


def test_key_values_of_other_instructions_is_an_error() -> None:
    with pytest.raises(DockerfileError):
        key_values(only("RUN x"), {})


def test_expansion_error_carries_the_line() -> None:
    with pytest.raises(DockerfileError) as caught:
        key_values(only("ENV a=${b:?required}"), {})
    assert (
        str(caught.value)
        == 'Dockerfile parse error on line 2: failed to process "${b:?required}": b: required'
    )


def test_meta_args() -> None:
    dockerfile = parse("ARG A=1\nARG B\nFROM img:${A}\nARG A\n")
    assert [i.args for i in dockerfile.meta_args] == [("A=1",), ("B",)]
    assert dockerfile.stages[0].base == "img:${A}"
    assert dockerfile.stages[0].instructions[0].keyword == "ARG"


# --- expansion ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "result"),
    [
        ("plain", "plain"),
        ("$A", "a"),
        ("${A}", "a"),
        ("x${A}y", "xay"),
        ("$A$B", "a"),
        ("$Ab", ""),  # the name is Ab
        ("${A}b", "ab"),
        ("$UNSET", ""),
        ("${UNSET}", ""),
        ("$", "$"),
        ("$/", "$/"),
        ("a$", "a$"),
        ("$1", ""),
        ("${A:-w}", "a"),
        ("${UNSET:-w}", "w"),
        ("${EMPTY:-w}", "w"),
        ("${A-w}", "a"),
        ("${UNSET-w}", "w"),
        ("${EMPTY-w}", ""),
        ("${A:+w}", "w"),
        ("${UNSET:+w}", ""),
        ("${EMPTY:+w}", ""),
        ("${A+w}", "w"),
        ("${UNSET+w}", ""),
        ("${EMPTY+w}", "w"),
        ("${A:?m}", "a"),
        ("${EMPTY?m}", ""),
        ("${UNSET:-$A}", "a"),  # nested
        ("${UNSET:-${A:+x}y}", "xy"),
        ("${UNSET:-'q w'}", "q w"),
        ("${P#*/}", "b/c.tar.gz"),
        ("${P##*/}", "c.tar.gz"),
        ("${P%.*}", "/b/c.tar"),
        ("${P%%.*}", "/b/c"),
        ("${P/b/x}", "/x/c.tar.gz"),
        ("${P//[.]/-}", "/b/c.tar.gz"),
        ("${P//./-}", "/b/c-tar-gz"),
        ("${P/?/x}", "xb/c.tar.gz"),
        ("'$A'", "$A"),
        ('"$A"', "a"),
        ('"a  b"', "a  b"),
        ("a  b", "a  b"),  # one word keeps its spaces
        ("\\$A", "$A"),
        ("\\a", "a"),
        ("a\\", "a"),
        ('"\\$A \\" \\\\ \\n"', '$A " \\ \\n'),
        ("'a\\b'", "a\\b"),
        ("'it'\\''s'", "it's"),
        ("`a`", "`a`"),  # no command substitution
        ("$(cmd)", "$(cmd)"),
        ("${#}", ""),
        ("é${A}é", "éaé"),
        ("$Aé", ""),  # é is a letter: the name is Aé
    ],
)
def test_expand(word: str, result: str) -> None:
    env = {"A": "a", "EMPTY": "", "P": "/b/c.tar.gz"}
    assert expand(word, env) == result


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${UNSET:?}", "UNSET: is not allowed to be unset"),
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
        ("${UNSET:?give it}", "UNSET: give it"),
        ("${", "syntax error: missing '}'"),
        ("${A", "unsupported modifier (\ufffd) in substitution"),
        ("${A:-x", "syntax error: missing '}'"),
        ("${}", "syntax error: bad substitution"),
        ("${:a}", "syntax error: bad substitution"),
        ("${{a}", "syntax error: bad substitution"),
        ("${A:x}", "unsupported modifier (:x) in substitution"),
        ("${A:#x}", "unsupported modifier (:#) in substitution"),
        ("${A x}", "unsupported modifier ( ) in substitution"),
        ("'open", "unexpected end of statement while looking for matching single-quote"),
        ('"open', "unexpected end of statement while looking for matching double-quote"),
        ('"open\\', "unexpected end of statement while looking for matching double-quote"),
        ("${A/x}", "syntax error: missing '/' in ${}"),
        ("${A/x/y", "syntax error: missing '}'"),
    ],
)
def test_expand_errors(word: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        expand(word, {"A": "a", "EMPTY": ""})
    assert str(caught.value) == f"failed to process {json.dumps(word)}: {message}"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a b  c", ["a", "b", "c"]),
        ('"a b" c', ["a b", "c"]),
        ("'a b'c d", ["a bc", "d"]),
        ("a\\ b c", ["a b", "c"]),
        ("$X", ["1", "2"]),  # an expanded value splits
        ('"$X"', ["1 2"]),
        ("a$X", ["a1", "2"]),
        ('"" a', ["a"]),  # empty words are dropped
        ("  ", []),
        ("$UNSET b", ["b"]),
    ],
)
def test_expand_words(text: str, words: list[str]) -> None:
    assert expand_words(text, {"X": "1 2"}) == words


@pytest.mark.parametrize(
    ("text", "env", "result"),
    [
        ("COPY $SRC /d/$N", {"SRC": "a b", "N": "1"}, ["a b", "/d/1"]),  # split first, then expand
        ('COPY ["$SRC", "/d"]', {"SRC": "s"}, ["s", "/d"]),
        ("WORKDIR $HOME/x y", {"HOME": "/h"}, ["/h/x y"]),
        ("USER ${U:-app}", {}, ["app"]),
        ("EXPOSE $P 443", {"P": "80"}, ["80", "443"]),
        ("COPY <<EOF $D\nx\nEOF", {"D": "/d"}, ["<<EOF", "/d"]),
    ],
)
def test_expand_arguments(text: str, env: dict[str, str], result: list[str]) -> None:
    assert expand_arguments(only(text), env) == result


# --- HEALTHCHECK ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "config"),
    [
        ("HEALTHCHECK NONE", {"Test": ["NONE"]}),
        (
            "HEALTHCHECK --interval=1m30s --timeout=1.5s --start-period=300ms --retries=3"
            " CMD curl x",
            {
                "Test": ["CMD-SHELL", "curl x"],
                "Interval": 90_000_000_000,
                "Timeout": 1_500_000_000,
                "StartPeriod": 300_000_000,
                "StartInterval": 0,
                "Retries": 3,
            },
        ),
        (
            'HEALTHCHECK cmd ["a", "b"]',
            {
                "Test": ["CMD", "a", "b"],
                "Interval": 0,
                "Timeout": 0,
                "StartPeriod": 0,
                "StartInterval": 0,
                "Retries": 0,
            },
        ),
        (
            "HEALTHCHECK --interval=0s CMD x",
            {
                "Test": ["CMD-SHELL", "x"],
                "Interval": 0,
                "Timeout": 0,
                "StartPeriod": 0,
                "StartInterval": 0,
                "Retries": 0,
            },
        ),
    ],
)
def test_healthcheck(text: str, config: dict[str, object]) -> None:
    assert healthcheck(only(text)) == config


# --- stages ---------------------------------------------------------------------------------

MULTI = """\
ARG GO=1.22
FROM golang:${GO} AS Build
RUN go build
FROM build AS test
RUN go test
FROM scratch
COPY --from=build /app /app
"""


def test_stages() -> None:
    dockerfile = parse(MULTI)
    assert [(s.index, s.name, s.base) for s in dockerfile.stages] == [
        (0, "build", "golang:${GO}"),
        (1, "test", "build"),
        (2, None, "scratch"),
    ]
    assert [len(s.instructions) for s in dockerfile.stages] == [1, 1, 1]


@pytest.mark.parametrize(
    ("wanted", "index"), [("build", 0), ("BUILD", 0), ("test", 1), ("0", 0), ("2", 2)]
)
def test_stage_lookup(wanted: str, index: int) -> None:
    assert parse(MULTI).stage(wanted).index == index


@pytest.mark.parametrize("wanted", ["nope", "3", "-1", ""])
def test_unknown_stage(wanted: str) -> None:
    dockerfile: Dockerfile = parse(MULTI)
    assert dockerfile.find_stage(wanted) is None
    with pytest.raises(InvalidParameter, match="could not be found"):
        dockerfile.stage(wanted)


def test_original_as_the_legacy_builder_prints_it() -> None:
    run = only("run   --network=none  echo \\\n  hi  ")
    assert run.original == "run   --network=none  echo   hi"
    assert run.keyword == "RUN"


def test_line_longer_than_docker_reads() -> None:
    parse("FROM a\nLABEL x=" + "a" * 65000 + "\n")
    message = error_of("FROM a\nLABEL x=" + "a" * 65536 + "\n")
    assert message.endswith("on line 2: dockerfile line greater than max allowed size of 65535")


def test_a_large_dockerfile_parses_fast() -> None:
    text = (
        "FROM a\n"
        + "RUN echo ${A:-b} 'c d' \\\n  && x <<EOF\nbody\nEOF\nENV k=v l=\"m n\"\n" * 2000
    )
    started = time.perf_counter()
    dockerfile = parse(text)
    assert len(dockerfile.stages[0].instructions) == 4000
    assert time.perf_counter() - started < 2


def test_heredocs_only_where_docker_reads_them() -> None:
    # USER takes no heredoc: the next line is an instruction of its own
    assert (
        error_of("FROM a\nUSER <<X\nX\n")
        == "Dockerfile parse error on line 3: unknown instruction: X"
    )


@pytest.mark.parametrize(
    ("text", "heredocs"),
    [
        (
            "COPY <<X <<Y /dest\nY\nX\nX\nY",
            (Heredoc("X", "Y\n", True, False), Heredoc("Y", "X\n", True, False)),
        ),
        ("RUN --mount=type=cache,target=/c <<M\necho\nM", (Heredoc("M", "echo\n", True, False),)),
        (
            "RUN <<C\n# kept\nx # kept too\nC",
            (Heredoc("C", "# kept\nx # kept too\n", True, False),),
        ),
        ("ONBUILD RUN <<E\nx\nE", (Heredoc("E", "x\n", True, False),)),
        ("COPY a <<'x", ()),  # a delimiter the lexer cannot read: no heredoc, no error
    ],
)
def test_heredoc_cases(text: str, heredocs: tuple[Heredoc, ...]) -> None:
    assert only(text).heredocs == heredocs


def test_empty_continuation_warnings_show_the_joined_line() -> None:
    text = (
        "FROM a\nRUN something \\\n\n    following \\\n\n    more\n\nRUN another \\\n\n    thing\n"
    )
    warnings = parse(text).warnings
    assert len(warnings) == 3
    assert "RUN something     following     more" in warnings[0]
    assert "RUN another     thing" in warnings[1]
    assert "will become errors in a future release" in warnings[2]


@pytest.mark.parametrize(
    ("text", "args"),
    [
        # the parser keeps quotes and escapes; expansion removes them later
        ("ENV a=\"b c\" d='e\\ f' g=h\\ i", ("a", '"b c"', "d", "'e\\ f'", "g", "h\\ i")),
        ('ENV a="x\\"y"', ("a", '"x\\"y"')),
        ('LABEL föo=bàr "âbc"="x ÿz"', ("föo", "bàr", '"âbc"', '"x ÿz"')),
        ('ARG a="" b', ('a=""', "b")),
        ("ENV a=b\\", ("a", "b")),  # a final escape continues the line, into the end here
    ],
)
def test_key_value_words_as_parsed(text: str, args: tuple[str, ...]) -> None:
    assert only(text).args == args
