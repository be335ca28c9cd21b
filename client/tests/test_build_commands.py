"""``build`` and ``builder prune`` against a fake Engine API that records the request (the
query, the headers, the context tar's members) and answers with streams in moby's legacy
builder format; and the ``.dockerignore`` matcher against moby's documented behaviour."""

from __future__ import annotations

import base64
import functools
import gzip
import http.server
import io
import json
import os
import re
import shlex
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydocker.commands.build import StepTimer
from pydocker.dockerignore import BadPattern, PatternMatcher, read_dockerignore
from pydocker.formatting import decimal_size

from client.tests.fakeengine import FakeDaemon, Recorded, Reply, Terminal, run, serve
from client.tests.record_docker import BUILD, BUILD_STREAM, DATA, build_project, build_request

IMAGE_ID = "sha256:" + "3f0a" * 16
SHORT_ID = IMAGE_ID[7:19]
DOCKERFILE = "FROM busybox\nCOPY . /app\n"


def lines(*messages: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(m).encode() + b"\r\n" for m in messages)


SUCCESS = [
    {"stream": "Step 1/2 : FROM busybox\n"},
    {"stream": " ---> 1b2c3d4e5f60\n"},
    {"stream": "Step 2/2 : COPY . /app\n"},
    {"stream": f" ---> {SHORT_ID}\n"},
    {"aux": {"ID": IMAGE_ID}},
    {"stream": f"Successfully built {SHORT_ID}\n"},
    {"stream": "Successfully tagged app:latest\n"},
]
SUCCESS_TEXT = (
    "Step 1/2 : FROM busybox\n ---> 1b2c3d4e5f60\nStep 2/2 : COPY . /app\n"
    f" ---> {SHORT_ID}\nSuccessfully built {SHORT_ID}\nSuccessfully tagged app:latest\n"
)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    with serve(tmp_path) as fake:
        fake.replies[("POST", "/build")] = Reply(chunks=[lines(m) for m in SUCCESS])
        yield fake


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A context directory with a Dockerfile, files to exclude and to keep."""
    root = tmp_path / "ctx"
    (root / "src" / "tmp").mkdir(parents=True)
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "README.md").write_text("read me\n")
    (root / "NOTES.md").write_text("notes\n")
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "src" / "tmp" / "cache").write_text("junk\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("README.md")
    return root


def members(request: Recorded) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(request.body)) as archive:
        return {m.name: m for m in archive.getmembers()}


def content(request: Recorded, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(request.body)) as archive:
        handle = archive.extractfile(name)
        assert handle is not None
        return handle.read()


def build(daemon: FakeDaemon, *args: str, **settings: Any) -> tuple[Any, Recorded | None]:
    result = run(daemon, "build", *args, **settings)
    found = [r for r in daemon.requests if r.path == "/build"]
    return result, found[-1] if found else None


# -- .dockerignore ----------------------------------------------------------------------


def test_read_dockerignore() -> None:
    text = (
        "\ufeff# comment\n  *.md  \n\n!README.md\n/abs\n./dot/x\ndir/\n! spaced\na//b/../c\n #x\n"
    )
    assert read_dockerignore(text) == [
        "*.md",
        "!README.md",
        "abs",
        "dot/x",
        "dir",
        "!spaced",
        "a/c",
        "#x",
    ]


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["*.md"], "README.md", True),
        (["*.md"], "docs/README.md", False),  # * does not cross /
        (["*/*.md"], "docs/README.md", True),
        (["*.md", "!README.md"], "README.md", False),
        (["*.md", "!README.md"], "CHANGES.md", True),
        (["!README.md", "*.md"], "README.md", True),  # the last match decides
        (["**/tmp"], "tmp", True),
        (["**/tmp"], "a/b/tmp", True),
        (["**/tmp"], "a/b/tmp/file", True),  # a parent matches
        (["**/tmp"], "a/tmpfile", False),
        (["**/*.go"], "x/y/z.go", True),
        (["**"], "anything/at/all", True),
        (["src/**"], "src/a/b", True),
        (["src/**"], "srcx", False),
        (["src/**/*.pyc"], "src/a/b/c.pyc", True),
        (["src/**/*.pyc"], "src/c.pyc", True),
        (["abs"], "abs", True),
        (["abs"], "abs/inner", True),
        (["abs"], "x/abs", False),
        (["dir"], "dir/file", True),
        (["dir"], "dirx", False),
        (["?.txt"], "a.txt", True),
        (["?.txt"], "ab.txt", False),
        (["[a-c].txt"], "b.txt", True),
        (["[a-c].txt"], "d.txt", False),
        (["a.b"], "axb", False),  # . is literal
        (["\\**"], "*x", True),  # an escaped *, then a wildcard
        (["\\**"], "x", False),
        (["\\*"], "*", False),  # moby's quirk: without a wildcard the pattern is exact
        (["\\*"], "\\*", True),
        (["build", "!build/keep"], "build/keep", False),
        (["build", "!build/keep"], "build/keep/inner", False),
        (["build", "!build/keep"], "build/other", True),
        (["build/*", "!build/keep"], "build", False),
        ([], "anything", False),
        (["*"], ".", False),  # the context itself is never excluded
    ],
)
def test_pattern_matcher(patterns: list[str], path: str, excluded: bool) -> None:
    assert PatternMatcher(patterns).matches(path) is excluded


def test_pattern_errors() -> None:
    with pytest.raises(BadPattern):
        PatternMatcher(["[a-"]).matches("x")
    with pytest.raises(Exception, match='illegal exclusion pattern: "!"'):
        PatternMatcher(["!"])


# -- the context ------------------------------------------------------------------------


def test_context_tar(daemon: FakeDaemon, context: Path) -> None:
    (context / ".dockerignore").write_text(
        "*.md\n!README.md\n**/tmp\n/link\nDockerfile\n.dockerignore\n"
    )
    result, request = build(daemon, "-t", "app", str(context))
    assert result.status == 0, result.stderr
    assert request is not None
    found = members(request)
    # excluded, but sent anyway: the daemon needs them
    assert sorted(found) == [
        ".dockerignore",
        "Dockerfile",
        "README.md",
        "run.sh",
        "src",
        "src/main.py",
    ]
    assert list(found) == sorted(found)  # the walk's lexical order, directories first
    assert b"src/\0" in request.body  # a directory's name ends with / (tarfile strips it)
    assert found["run.sh"].mode == 0o755
    assert found["README.md"].mode == 0o644
    assert found["src"].isdir()
    for member in found.values():
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
    assert found["run.sh"].mtime == int((context / "run.sh").stat().st_mtime)
    assert content(request, "Dockerfile") == DOCKERFILE.encode()
    assert dict(request.query)["dockerfile"] == "Dockerfile"
    assert request.headers["Content-Type"] == "application/x-tar"


def test_symlinks_and_links(daemon: FakeDaemon, context: Path) -> None:
    os.link(context / "run.sh", context / "run2.sh")
    result, request = build(daemon, str(context))
    assert result.status == 0, result.stderr
    assert request is not None
    found = members(request)
    assert found["link"].issym()
    assert found["link"].linkname == "README.md"
    assert found["run2.sh"].islnk()
    assert found["run2.sh"].linkname == "run.sh"
    assert "src/tmp/cache" in found


def test_exception_inside_excluded_directory(daemon: FakeDaemon, context: Path) -> None:
    (context / "src" / "keep").mkdir()
    (context / "src" / "keep" / "me.txt").write_text("kept\n")
    (context / ".dockerignore").write_text("src\n!src/keep/me.txt\n")
    result, request = build(daemon, str(context))
    assert result.status == 0, result.stderr
    assert request is not None
    found = members(request)
    # moby walks into src for the exception but sends neither src/ nor src/keep/
    assert [name for name in found if name.startswith("src")] == ["src/keep/me.txt"]


def test_dockerfile_inside_context(daemon: FakeDaemon, context: Path) -> None:
    (context / "docker").mkdir()
    (context / "docker" / "app.Dockerfile").write_text("FROM scratch\n")
    (context / ".dockerignore").write_text("docker\n")
    result, request = build(daemon, "-f", "ctx/docker/app.Dockerfile", "ctx", cwd=context.parent)
    assert result.status == 0, result.stderr
    assert request is not None
    assert dict(request.query)["dockerfile"] == "docker/app.Dockerfile"
    assert "docker/app.Dockerfile" in members(request)
    assert "docker" not in members(request)


def test_lowercase_dockerfile(daemon: FakeDaemon, context: Path) -> None:
    (context / "Dockerfile").rename(context / "dockerfile")
    result, request = build(daemon, str(context))
    assert result.status == 0, result.stderr
    assert request is not None
    assert dict(request.query)["dockerfile"] == "dockerfile"


def test_dockerfile_outside_context(daemon: FakeDaemon, context: Path, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "Dockerfile").write_text("FROM outside\n")
    (context / ".dockerignore").write_text("*.md\n")
    result, request = build(daemon, "-f", str(tmp_path / "other" / "Dockerfile"), str(context))
    assert result.status == 0, result.stderr
    assert request is not None
    name = dict(request.query)["dockerfile"]
    assert re.fullmatch(r"\.dockerfile\.[0-9a-f]{20}", name)
    found = members(request)
    assert found[name].mode == 0o600
    assert content(request, name) == b"FROM outside\n"
    assert content(request, ".dockerignore") == f"*.md\n\n{name}\n".encode()
    assert "Dockerfile" in found  # the context's own, not excluded


def test_dockerfile_from_stdin(daemon: FakeDaemon, context: Path) -> None:
    result, request = build(daemon, "-f", "-", str(context), stdin=b"FROM stdin\n")
    assert result.status == 0, result.stderr
    assert request is not None
    name = dict(request.query)["dockerfile"]
    assert re.fullmatch(r"\.dockerfile\.[0-9a-f]{20}", name)
    assert content(request, name) == b"FROM stdin\n"
    # no .dockerignore in the context: one is made that hides the injected file
    assert content(request, ".dockerignore") == f".dockerignore\n{name}\n".encode()
    assert members(request)[".dockerignore"].mode == 0o600


def test_context_from_stdin_tar(daemon: FakeDaemon) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = b"FROM busybox\n"
        info = tarfile.TarInfo("build/Dockerfile.app")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    result, request = build(daemon, "-f", "build/Dockerfile.app", "-", stdin=buffer.getvalue())
    assert result.status == 0, result.stderr
    assert request is not None
    assert request.body == buffer.getvalue()  # sent as it is
    assert dict(request.query)["dockerfile"] == "build/Dockerfile.app"


def test_context_from_stdin_gzip(daemon: FakeDaemon) -> None:
    packed = gzip.compress(b"not even a tar")
    result, request = build(daemon, "-", stdin=packed)
    assert result.status == 0, result.stderr
    assert request is not None
    assert request.body == packed
    assert "dockerfile" not in dict(request.query)


def test_context_from_stdin_dockerfile(daemon: FakeDaemon) -> None:
    result, request = build(daemon, "-", stdin=b"FROM busybox\nRUN true\n")
    assert result.status == 0, result.stderr
    assert request is not None
    assert list(members(request)) == ["Dockerfile"]
    assert content(request, "Dockerfile") == b"FROM busybox\nRUN true\n"
    assert dict(request.query)["dockerfile"] == "Dockerfile"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ["-f", "-", "-"],
            b"",
            "invalid argument: can't use stdin for both build context and dockerfile",
        ),
        (["-f", "x", "-"], b"FROM a\n", "unable to prepare context: ambiguous Dockerfile source"),
        (["/nonexistent/ctx"], b"", 'unable to prepare context: path "/nonexistent/ctx" not found'),
    ],
)
def test_context_errors(daemon: FakeDaemon, args: list[str], stdin: bytes, message: str) -> None:
    result, request = build(daemon, *args, stdin=stdin)
    assert result.status == 1
    assert result.stderr.startswith(message)
    assert request is None


def test_missing_dockerfile(daemon: FakeDaemon, context: Path) -> None:
    (context / "Dockerfile").unlink()
    result, request = build(daemon, str(context))
    assert result.status == 1
    assert result.stderr == (
        "unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
        f"lstat {context}/Dockerfile: no such file or directory\n"
    )
    assert request is None


def test_compress(daemon: FakeDaemon, context: Path) -> None:
    result, request = build(daemon, "--compress", str(context))
    assert result.status == 0, result.stderr
    assert request is not None
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(request.body))) as archive:
        assert "Dockerfile" in archive.getnames()


# -- the request ------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "stdin"), BUILD, ids=[c for c, _ in BUILD])
def test_same_request_and_output_as_docker(
    daemon: FakeDaemon, tmp_path: Path, command: str, stdin: str
) -> None:
    """What docker 28.2.2 sent and printed for the same command line in the same project
    (``record_docker.py``): the query, every tar member, stdout byte for byte."""
    recorded = json.loads((DATA / "docker-build.json").read_text())[command]
    daemon.reply("POST", "/build", BUILD_STREAM, content_type="application/json")
    project = tmp_path / "project"
    project.mkdir()
    build_project(project)
    result, request = build(daemon, *shlex.split(command)[1:], stdin=stdin.encode(), cwd=project)
    assert result.status == 0, result.stderr
    assert request is not None
    assert build_request(request) == {
        "query": recorded["query"],
        "members": recorded["members"],
    }
    expected = recorded["stdout"]
    if dict(recorded["query"])["dockerfile"] == ".dockerfile.RANDOM":
        # docker's tar lacks the injected file's padding and the end-of-archive blocks
        # (moby's ReplaceFileTarWrapper closes the pipe first); pydocker's is whole
        injected = recorded["members"][-1][8]
        size = len(request.body) - (-injected % 512) - 1024
        assert f"daemon  {decimal_size(size, 4)}\r" in expected
        expected = expected.replace(decimal_size(size, 4), decimal_size(len(request.body), 4))
    assert result.out == expected


def test_query(daemon: FakeDaemon, context: Path) -> None:
    result, request = build(
        daemon,
        "-t",
        "app",
        "-t",
        "registry.local:5000/app:1.0",
        "--build-arg",
        "FROM_ENV",
        "--build-arg",
        "UNSET_ARG",
        "--build-arg",
        "V=1",
        "--label",
        "b=2",
        "--label",
        "a=1",
        "--target",
        "final",
        "--no-cache",
        "--pull",
        "--rm=false",
        "--force-rm",
        "--network",
        "host",
        "--platform",
        "Linux/AMD64",
        "--add-host",
        "db:10.0.0.2",
        "--shm-size",
        "64m",
        "-m",
        "1g",
        "--cpu-shares",
        "512",
        "--ulimit",
        "nofile=1024:2048",
        str(context),
        env={"FROM_ENV": "from the environment"},
    )
    assert result.status == 0, result.stderr
    assert request is not None
    assert request.query == [
        ("buildargs", '{"FROM_ENV":"from the environment","UNSET_ARG":null,"V":"1"}'),
        ("cpushares", "512"),
        ("dockerfile", "Dockerfile"),
        ("extrahosts", "db:10.0.0.2"),
        ("forcerm", "1"),
        ("labels", '{"a":"1","b":"2"}'),
        ("memory", str(1 << 30)),
        ("networkmode", "host"),
        ("nocache", "1"),
        ("platform", "linux/amd64"),
        ("pull", "1"),
        ("rm", "0"),
        ("shmsize", str(64 << 20)),
        ("t", "app"),
        ("t", "registry.local:5000/app:1.0"),
        ("target", "final"),
        ("ulimits", '[{"Name":"nofile","Hard":2048,"Soft":1024}]'),
        ("version", "1"),
    ]
    assert request.headers["X-Registry-Config"] == "e30="


def test_minimal_query(daemon: FakeDaemon, context: Path) -> None:
    result, request = build(daemon, "--network", "default", str(context))
    assert result.status == 0, result.stderr
    assert request is not None
    assert request.query == [("dockerfile", "Dockerfile"), ("version", "1")]


def test_bad_tag_is_a_usage_error(daemon: FakeDaemon, context: Path) -> None:
    result, request = build(daemon, "-t", "Bad:Tag", str(context))
    assert result.status == 125
    assert result.stderr.startswith('invalid argument "Bad:Tag" for "-t, --tag" flag: ')
    assert request is None


def test_registry_config(daemon: FakeDaemon, context: Path) -> None:
    config = daemon.socket.parent / "docker-config"
    config.mkdir()
    (config / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "127.0.0.1:5000": {"auth": base64.b64encode(b"me:secret").decode()},
                    "https://index.docker.io/v1/": {"identitytoken": "tok"},
                }
            }
        )
    )
    result, request = build(daemon, str(context))
    assert result.status == 0, result.stderr
    assert request is not None
    header = request.headers["X-Registry-Config"]
    assert json.loads(base64.urlsafe_b64decode(header)) == {
        "127.0.0.1:5000": {
            "username": "me",
            "password": "secret",
            "serveraddress": "127.0.0.1:5000",
        },
        "https://index.docker.io/v1/": {
            "serveraddress": "https://index.docker.io/v1/",
            "identitytoken": "tok",
        },
    }


# -- the output -------------------------------------------------------------------------


def test_output_and_timing(daemon: FakeDaemon, context: Path) -> None:
    result, _ = build(daemon, "-t", "app", str(context))
    assert result.status == 0, result.stderr
    sending, rest = result.out.split("\r\r\n", 1)
    assert re.fullmatch(r"Sending build context to Docker daemon  [ \d.]+kB", sending)
    assert rest == SUCCESS_TEXT  # stdout is docker's, byte for byte
    timing = result.stderr.splitlines()
    assert len(timing) == 3
    assert all(re.fullmatch(r" ---> done in \d+\.\d\ds", line) for line in timing[:2])
    assert re.fullmatch(r"Build took \d+\.\d\ds \(2 steps\)", timing[2])


def test_step_timer() -> None:
    ticks = iter([0.0, 0.5, 1.25, 1.5, 4.0, 4.5, 5.0, 5.0])
    out = io.StringIO()
    timer = StepTimer(out, clock=lambda: next(ticks))
    passed = list(timer.watch(SUCCESS))
    assert passed == SUCCESS
    assert timer.durations == [
        ("Step 1/2 : FROM busybox", 1.25),
        ("Step 2/2 : COPY . /app", 2.75),
    ]
    assert (
        out.getvalue() == " ---> done in 1.25s\n ---> done in 2.75s\nBuild took 5.00s (2 steps)\n"
    )


def test_step_timer_failure_and_long_steps() -> None:
    ticks = iter([0.0, 125.0, 125.0])
    out = io.StringIO()
    timer = StepTimer(out, clock=lambda: next(ticks))
    messages = [
        {"stream": "Step 1/1 : RUN false\n"},
        {"errorDetail": {"message": "boom"}, "error": "boom"},
    ]
    assert list(timer.watch(messages)) == messages
    assert out.getvalue() == " ---> failed after 2m05.0s\nBuild took 2m05.0s (1 step)\n"


def test_quiet(daemon: FakeDaemon, context: Path, tmp_path: Path) -> None:
    daemon.replies[("POST", "/build")] = Reply(chunks=[lines({"stream": f"{IMAGE_ID}\n"})])
    iidfile = tmp_path / "iid"
    result, request = build(daemon, "-q", "--iidfile", str(iidfile), str(context))
    assert (result.status, result.out, result.stderr) == (0, f"{IMAGE_ID}\n", "")
    assert request is not None
    assert ("q", "1") in request.query
    assert iidfile.read_text() == f"{IMAGE_ID}\n"  # docker writes what it printed


def test_iidfile(daemon: FakeDaemon, context: Path, tmp_path: Path) -> None:
    iidfile = tmp_path / "iid"
    iidfile.write_text("stale")
    result, _ = build(daemon, "--iidfile", str(iidfile), str(context))
    assert result.status == 0, result.stderr
    assert iidfile.read_text() == IMAGE_ID


def test_iidfile_without_id(daemon: FakeDaemon, context: Path, tmp_path: Path) -> None:
    daemon.replies[("POST", "/build")] = Reply(chunks=[lines({"stream": "Step 1/1 : FROM a\n"})])
    iidfile = tmp_path / "iid"
    iidfile.write_text("stale")
    result, _ = build(daemon, "--iidfile", str(iidfile), str(context))
    assert result.status == 1
    assert result.stderr.endswith(f"Server did not provide an image ID. Cannot write {iidfile}\n")
    assert not iidfile.exists()  # removed before the build, as docker does


@pytest.mark.parametrize(("detail", "status"), [({}, 1), ({"code": 3}, 3)])
def test_failed_step(
    daemon: FakeDaemon, context: Path, detail: dict[str, Any], status: int
) -> None:
    message = "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    daemon.replies[("POST", "/build")] = Reply(
        chunks=[
            lines({"stream": "Step 1/2 : FROM busybox\n"}),
            lines({"stream": " ---> 1b2c3d4e5f60\n"}),
            lines({"stream": "Step 2/2 : RUN exit 3\n"}),
            lines({"stream": " ---> Running in 0123456789ab\n"}),
            lines({"errorDetail": {"message": message, **detail}, "error": message}),
        ]
    )
    iidfile = context.parent / "iid"
    result, _ = build(daemon, "--iidfile", str(iidfile), str(context))
    assert result.status == status
    assert result.out.endswith(" ---> Running in 0123456789ab\n")
    errors = result.stderr.splitlines()
    assert re.fullmatch(r" ---> failed after \d+\.\d\ds", errors[-2])
    assert errors[-1] == message  # the last line, without "Error response from daemon"
    assert not iidfile.exists()


def test_failed_quiet_build_shows_what_was_kept(daemon: FakeDaemon, context: Path) -> None:
    daemon.replies[("POST", "/build")] = Reply(
        chunks=[
            lines({"stream": "Step 1/1 : FROM nosuch\n"}),
            lines({"errorDetail": {"message": "pull access denied"}, "error": "x"}),
        ]
    )
    result, _ = build(daemon, "-q", str(context))
    assert (result.status, result.out) == (1, "")
    assert result.stderr.startswith("Sending build context to Docker daemon")
    assert result.stderr.endswith("Step 1/1 : FROM nosuch\npull access denied\n")


def test_http_error(daemon: FakeDaemon, context: Path) -> None:
    daemon.error("POST", "/build", 400, "dockerfile parse error line 1: unknown instruction: FRM")
    result, _ = build(daemon, str(context))
    assert result.status == 1
    assert result.stderr == (
        "Error response from daemon: dockerfile parse error line 1: unknown instruction: FRM\n"
    )


def test_terminal_output(daemon: FakeDaemon, context: Path) -> None:
    terminal = Terminal(
        [sys.executable, "-m", "pydocker", "-H", daemon.host, "build", str(context)],
        env={"DOCKER_CONFIG": str(daemon.socket.parent / "cfg")},
    )
    assert terminal.wait() == 0
    text = terminal.output.decode()
    assert "Sending build context to Docker daemon" in text
    assert "\x1b[2m ---> done in " in text  # dim on a terminal
    assert "Successfully tagged app:latest" in text
    plain = Terminal(
        [sys.executable, "-m", "pydocker", "-H", daemon.host, "build", str(context)],
        env={"DOCKER_CONFIG": str(daemon.socket.parent / "cfg"), "NO_COLOR": "1"},
    )
    assert plain.wait() == 0
    assert "\x1b[2m" not in plain.output.decode()


# -- builder prune ----------------------------------------------------------------------

PRUNED = {"CachesDeleted": ["abc123", "def456"], "SpaceReclaimed": 1_234_567}


def test_builder_prune_forced(daemon: FakeDaemon) -> None:
    daemon.reply("POST", "/build/prune", PRUNED)
    result = run(
        daemon, "builder", "prune", "-a", "-f", "--filter", "until=24h", "--keep-storage", "1gb"
    )
    assert (result.status, result.stderr) == (0, "")
    assert result.out == (
        "Deleted build cache objects:\nabc123\ndef456\n\nTotal reclaimed space: 1.235MB\n"
    )
    request = daemon.only()
    assert (request.method, request.path) == ("POST", "/build/prune")
    assert request.query == [  # as docker 28.2.2 sends it
        ("all", "1"),
        ("filters", '{"until":{"24h":true}}'),
        ("keep-storage", str(1 << 30)),
    ]


def test_builder_prune_asks(daemon: FakeDaemon) -> None:
    daemon.reply("POST", "/build/prune", {"CachesDeleted": None, "SpaceReclaimed": 0})
    declined = run(daemon, "builder", "prune", stdin=b"n\n")
    assert (declined.status, declined.out) == (
        0,
        "WARNING! This will remove all dangling build cache. Are you sure you want to "
        "continue? [y/N] ",
    )
    assert daemon.calls() == []
    accepted = run(daemon, "builder", "prune", "--all", stdin=b"y\n")
    assert accepted.out == (
        "WARNING! This will remove all build cache. Are you sure you want to continue? "
        "[y/N] Total reclaimed space: 0B\n"
    )
    assert daemon.only().query == [("all", "1"), ("filters", "")]  # docker's empty filters


def test_builder_prune_on_a_terminal(daemon: FakeDaemon) -> None:
    daemon.reply("POST", "/build/prune", PRUNED)
    terminal = Terminal(
        [sys.executable, "-m", "pydocker", "-H", daemon.host, "builder", "prune"],
        env={"DOCKER_CONFIG": str(daemon.socket.parent / "cfg")},
    )
    terminal.expect("Are you sure you want to continue? [y/N] ")
    terminal.send("y\n")
    assert terminal.wait() == 0
    assert "Total reclaimed space: 1.235MB" in terminal.output.decode()


def test_builder_build_and_image_build(daemon: FakeDaemon, context: Path) -> None:
    for group in ("builder", "image"):
        result = run(daemon, group, "build", "-q", str(context))
        assert result.status == 0, result.stderr


# -- system df --------------------------------------------------------------------------


def test_system_df_build_cache(daemon: FakeDaemon) -> None:
    cache = [
        {"ID": "a" * 25, "Type": "regular", "Size": 2_000_000, "InUse": True, "Shared": False},
        {"ID": "b" * 25, "Type": "regular", "Size": 500_000, "InUse": False, "Shared": False},
        {"ID": "c" * 25, "Type": "regular", "Size": 700_000, "InUse": False, "Shared": True},
    ]
    daemon.reply(
        "GET",
        "/system/df",
        {"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [], "BuildCache": cache},
    )
    result = run(daemon, "system", "df")
    assert result.status == 0, result.stderr
    assert result.out.splitlines()[-1] == "Build Cache     3         1         2.5MB     500kB"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    """A static web server on 127.0.0.1 serving ``tmp_path/www``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(5)


def test_url_context(daemon: FakeDaemon, web: str, tmp_path: Path) -> None:
    (tmp_path / "www" / "Dockerfile").write_text("FROM busybox\n")
    result, request = build(daemon, f"{web}/Dockerfile")
    assert result.status == 0, result.stderr
    assert request is not None
    assert content(request, "Dockerfile") == b"FROM busybox\n"
    missing, _ = build(daemon, f"{web}/nothing")
    assert missing.status == 1
    assert missing.stderr.startswith(
        f"unable to prepare context: unable to download remote context {web}/nothing: "
        f"failed to GET {web}/nothing with status 404"
    )
