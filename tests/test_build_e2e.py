"""Builds end to end: the real docker CLI (legacy builder, no buildx here) and docker-py
against pydockerd, with real RUN containers, the cache and multi-stage builds."""

from __future__ import annotations

import http.server
import io
import json
import re
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydockerd.testing.daemon import DaemonProcess

from tests.helpers import DOCKER, busybox_daemon, docker

pytestmark = pytest.mark.privileged

MULTI_STAGE = """\
# a build stage that makes files, and a small final stage
FROM busybox AS build
ARG GREETING=hello
WORKDIR /src
COPY greeting.txt .
RUN echo "$GREETING from $(cat greeting.txt)" > /src/out.txt
COPY data/ /src/data/
RUN ls /src/data > /src/listing.txt

FROM busybox
COPY --from=build /src/out.txt /src/listing.txt /app/
CMD ["cat", "/app/out.txt", "/app/listing.txt"]
"""


@pytest.fixture(scope="module")
def daemon(busybox_tar: Path) -> Iterator[DaemonProcess]:
    with busybox_daemon(busybox_tar) as process:
        yield process


@pytest.fixture
def env(daemon: DaemonProcess) -> dict[str, str]:
    return {**daemon.env, "DOCKER_BUILDKIT": "0"}


def build(
    env: dict[str, str], *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [DOCKER, "build", *args],
        env=env,
        input=stdin.decode() if stdin is not None else None,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result


def ok(env: dict[str, str], *args: str) -> str:
    result = docker(env, *args, timeout=120)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def project(directory: Path, dockerfile: str = MULTI_STAGE) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Dockerfile").write_text(dockerfile)
    (directory / "greeting.txt").write_text("world")
    (directory / "data").mkdir(exist_ok=True)
    (directory / "data" / "a.txt").write_text("a")
    (directory / "data" / "b.txt").write_text("b")
    return directory


def steps(output: str) -> list[tuple[str, bool]]:
    """Each step's instruction and whether it came from the cache."""
    found: list[tuple[str, bool]] = []
    for chunk in re.split(r"^Step \d+/\d+ : ", output, flags=re.M)[1:]:
        first, _, rest = chunk.partition("\n")
        found.append((first, " ---> Using cache" in rest))
    return found


def test_multi_stage_build_runs_and_is_cached_step_by_step(
    env: dict[str, str], tmp_path: Path
) -> None:
    context = project(tmp_path / "app")
    first = build(env, "-t", "app:1", str(context))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Successfully built" in first.stdout
    assert "Successfully tagged app:1" in first.stdout
    assert " ---> Running in " in first.stdout
    assert [cached for _, cached in steps(first.stdout)] == [False] * 10
    assert ok(env, "run", "--rm", "app:1") == "hello from world\na.txt\nb.txt\n"

    again = build(env, "-t", "app:1", str(context))
    assert again.returncode == 0, again.stderr
    cached = steps(again.stdout)
    assert [c for instruction, c in cached if not instruction.startswith("FROM")] == [True] * 8
    assert " ---> Running in " not in again.stdout  # no RUN ran again

    (context / "data" / "b.txt").write_text("changed")  # same names: listing.txt is the same
    changed = steps(build(env, "-t", "app:1", str(context)).stdout)
    assert changed == [
        ("FROM busybox AS build", False),
        ("ARG GREETING=hello", True),
        ("WORKDIR /src", True),
        ("COPY greeting.txt .", True),
        ('RUN echo "$GREETING from $(cat greeting.txt)" > /src/out.txt', True),
        ("COPY data/ /src/data/", False),
        ("RUN ls /src/data > /src/listing.txt", False),
        ("FROM busybox", False),
        ("COPY --from=build /src/out.txt /src/listing.txt /app/", True),
        ('CMD ["cat", "/app/out.txt", "/app/listing.txt"]', True),
    ]
    # a build argument is part of RUN's cache key
    other = build(env, "--build-arg", "GREETING=hi", "-t", "app:2", str(context))
    assert other.returncode == 0, other.stderr
    assert ok(env, "run", "--rm", "app:2").startswith("hi from world\n")
    ok(env, "rmi", "app:1", "app:2")


def test_the_image_config_and_history_are_as_docker_writes_them(
    env: dict[str, str], tmp_path: Path
) -> None:
    context = tmp_path / "meta"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM busybox\n"
        "ENV APP=/opt/app \\\n    MODE=prod\n"
        'LABEL org.example.team=core version="1.0"\n'
        "EXPOSE 8080 53/udp\n"
        "USER 1000:1000\n"
        "WORKDIR $APP\n"
        "VOLUME /data\n"
        "STOPSIGNAL SIGTERM\n"
        "HEALTHCHECK --interval=30s --retries=3 CMD wget -q -O- http://localhost/ || exit 1\n"
        'ENTRYPOINT ["/bin/sh", "-c"]\n'
        'CMD ["echo $MODE"]\n'
    )
    result = build(env, "-t", "meta:1", "--label", "built-by=test", str(context))
    assert result.returncode == 0, result.stdout + result.stderr
    image = json.loads(ok(env, "image", "inspect", "meta:1"))[0]
    config = image["Config"]
    assert "APP=/opt/app" in config["Env"]
    assert "MODE=prod" in config["Env"]
    assert config["Labels"] == {"org.example.team": "core", "version": "1.0", "built-by": "test"}
    assert config["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert config["User"] == "1000:1000"
    assert config["WorkingDir"] == "/opt/app"
    assert config["Volumes"] == {"/data": {}}
    assert config["StopSignal"] == "SIGTERM"
    assert config["Healthcheck"]["Test"][0] == "CMD-SHELL"
    assert config["Healthcheck"]["Interval"] == 30_000_000_000
    assert config["Entrypoint"] == ["/bin/sh", "-c"]
    assert config["Cmd"] == ["echo $MODE"]
    history = ok(env, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "meta:1")
    lines = history.splitlines()
    assert lines[0] == '/bin/sh -c #(nop)  LABEL "built-by"="test"'  # --label: the last step
    assert '/bin/sh -c #(nop)  CMD ["echo $MODE"]' in lines
    assert "/bin/sh -c #(nop) WORKDIR /opt/app" in lines
    ids = ok(env, "history", "-q", "meta:1").split()
    assert "<missing>" not in ids  # each step is a local (intermediate) image
    assert len(set(ids)) == len(ids)
    assert ok(env, "run", "--rm", "--user", "0", "meta:1").strip() == "prod"
    ok(env, "rmi", "meta:1")


def test_a_failing_step_ends_with_its_exit_code_and_tags_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    context = tmp_path / "fails"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM busybox\nRUN echo before\nRUN exit 3\nRUN echo after\n"
    )
    result = build(env, "-t", "fails:1", str(context))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "before" in result.stdout
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in result.stderr
    assert "after" not in result.stdout
    assert docker(env, "image", "inspect", "fails:1").returncode == 1
    leftover = ok(env, "ps", "-a", "-q")
    assert leftover == ""  # the failed step's container is removed too


def test_dockerfile_from_stdin_and_context_from_stdin(env: dict[str, str], tmp_path: Path) -> None:
    context = project(tmp_path / "ctx")
    dockerfile = 'FROM busybox\nCOPY greeting.txt /g\nCMD ["cat", "/g"]\n'
    piped = build(env, "-f", "-", "-t", "stdin:1", str(context), stdin=dockerfile.encode())
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert ok(env, "run", "--rm", "stdin:1") == "world"

    only_dockerfile = build(env, "-t", "stdin:2", "-", stdin=b"FROM busybox\nRUN echo made > /m\n")
    assert only_dockerfile.returncode == 0, only_dockerfile.stdout + only_dockerfile.stderr
    assert ok(env, "run", "--rm", "stdin:2", "cat", "/m") == "made\n"
    ok(env, "rmi", "stdin:1", "stdin:2")


def test_dockerignore_target_quiet_and_iidfile(env: dict[str, str], tmp_path: Path) -> None:
    dockerfile = MULTI_STAGE.replace("COPY data/ /src/data/", "COPY . /src/all/")
    context = project(tmp_path / "ignore", dockerfile.replace("ls /src/data", "ls /src/all/data"))
    (context / ".dockerignore").write_text("data/a.txt\n*.log\n")
    (context / "debug.log").write_text("noise")
    iid = tmp_path / "iid"
    quiet = build(
        env, "-q", "--target", "build", "--iidfile", str(iid), "-t", "stage:1", str(context)
    )
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    image_id = iid.read_text().strip()
    assert quiet.stdout.strip() == image_id
    listing = ok(env, "run", "--rm", "stage:1", "ls", "/src/all", "/src/all/data")
    assert "debug.log" not in listing
    assert "a.txt" not in listing
    assert "b.txt" in listing
    ok(env, "rmi", "stage:1")


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_add_unpacks_local_archives_and_fetches_urls(env: dict[str, str], tmp_path: Path) -> None:
    context = tmp_path / "add"
    context.mkdir()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = b"inside the archive\n"
        info = tarfile.TarInfo("pkg/readme")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (context / "pkg.tar.gz").write_bytes(archive.getvalue())
    served = tmp_path / "served"
    served.mkdir()
    (served / "remote.txt").write_text("fetched\n")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: _Files(*a, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        (context / "Dockerfile").write_text(
            "FROM busybox\n"
            "ADD pkg.tar.gz /opt/\n"
            f"ADD http://127.0.0.1:{port}/remote.txt /opt/remote.txt\n"
            "COPY <<EOF /opt/heredoc.txt\nwritten by a heredoc\nEOF\n"
        )
        result = build(env, "-t", "add:1", str(context))
        assert result.returncode == 0, result.stdout + result.stderr
        out = ok(
            env,
            "run",
            "--rm",
            "add:1",
            "cat",
            "/opt/pkg/readme",
            "/opt/remote.txt",
            "/opt/heredoc.txt",
        )
        assert out == "inside the archive\nfetched\nwritten by a heredoc\n"
        (context / "Dockerfile").write_text("FROM busybox\nADD http://127.0.0.1:1/nothing /x\n")
        unreachable = build(env, "-t", "add:2", str(context))
        assert unreachable.returncode == 1
        assert "failed to fetch http://127.0.0.1:1/nothing" in unreachable.stderr
    finally:
        server.shutdown()
        server.server_close()
    ok(env, "rmi", "add:1")


def test_builder_prune_and_system_df(env: dict[str, str], tmp_path: Path) -> None:
    context = project(tmp_path / "prune")
    assert build(env, "-t", "prune:1", str(context)).returncode == 0
    df = ok(env, "system", "df", "--format", "{{json .}}")
    cache = next(json.loads(line) for line in df.splitlines() if "Build Cache" in line)
    assert int(cache["TotalCount"]) > 0
    ok(env, "rmi", "prune:1")
    pruned = ok(env, "builder", "prune", "-f")
    assert "Total reclaimed space:" in pruned
    again = build(env, "-t", "prune:1", str(context))
    assert " ---> Using cache" not in again.stdout  # the cache is gone
    ok(env, "rmi", "prune:1")


def test_docker_py_builds_from_a_path(daemon: DaemonProcess, tmp_path: Path) -> None:
    import docker as docker_py

    context = project(tmp_path / "py")
    client = docker_py.DockerClient(base_url=daemon.env["DOCKER_HOST"], version="auto")
    try:
        image, logs = client.images.build(path=str(context), tag="py:1")
        assert "py:1" in image.tags
        assert any("Successfully built" in (line.get("stream") or "") for line in logs)
        output = client.containers.run("py:1", remove=True)
        assert output == b"hello from world\na.txt\nb.txt\n"
        client.images.remove("py:1")
    finally:
        client.close()


FEATURES = """\
# escape=`
ARG BASE=busybox
FROM ${BASE} AS base
ONBUILD RUN echo triggered > /onbuild.txt

FROM base AS child
SHELL ["/bin/sh", "-e", "-c"]
ENV WHO=builder
USER nobody
RUN id -un > /tmp/user.txt && echo "$WHO" > /tmp/who.txt
USER root
COPY --chown=nobody:nogroup --chmod=640 greeting.txt /owned/
RUN <<END
echo from a heredoc > /heredoc.txt
END
RUN <<END
#!/bin/sh
echo "from a script: $0" > /script.txt
END
RUN echo one `
    two > /continued.txt
FROM child
RUN stat -c '%U:%G %a' /owned/greeting.txt > /owner.txt
"""


def test_many_instructions_behave_as_docker(env: dict[str, str], tmp_path: Path) -> None:
    context = project(tmp_path / "features", FEATURES)
    result = build(env, "--no-cache", "-t", "features:1", str(context))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# Executing 1 build trigger" in result.stdout
    files = ok(
        env,
        "run",
        "--rm",
        "features:1",
        "cat",
        "/onbuild.txt",
        "/tmp/user.txt",
        "/tmp/who.txt",
        "/heredoc.txt",
        "/continued.txt",
        "/owner.txt",
    )
    assert files == "triggered\nnobody\nbuilder\nfrom a heredoc\none two\nnobody:nogroup 640\n"
    script = ok(env, "run", "--rm", "features:1", "cat", "/script.txt")
    assert script.startswith("from a script: /dev/pipes/")
    assert " ---> Using cache" not in result.stdout  # --no-cache: every step ran
    ok(env, "rmi", "features:1")


def test_build_errors_are_docker_errors(env: dict[str, str], tmp_path: Path) -> None:
    context = tmp_path / "errors"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nFROBNICATE now\n")
    unknown = build(env, str(context))
    assert unknown.returncode == 1
    assert "unknown instruction: FROBNICATE" in unknown.stderr, unknown.stderr
    (context / "Dockerfile").write_text("FROM busybox\nCOPY missing.txt /\n")
    missing = build(env, str(context))
    assert missing.returncode == 1
    assert "file not found in build context" in missing.stderr, missing.stderr
    (context / "Dockerfile").write_text("FROM busybox AS a\n")
    target = build(env, "--target", "nope", str(context))
    assert target.returncode == 1
    assert "nope" in target.stderr, target.stderr
    assert build(env, "-f", "Nope.dockerfile", str(context)).returncode == 1


def test_a_missing_base_image_is_pulled_with_the_credentials_sent(
    env: dict[str, str], tmp_path: Path
) -> None:
    from pydockerd.testing.registries import reference_registry

    with reference_registry() as registry:
        base = f"{registry.host}/base/busybox:v1"
        ok(env, "tag", "busybox", base)
        ok(env, "push", base)
        ok(env, "rmi", base)
        context = tmp_path / "pull"
        context.mkdir()
        (context / "Dockerfile").write_text(
            f'FROM {base} AS First\nRUN echo pulled > /p\nFROM first\nCMD ["cat", "/p"]\n'
        )
        result = build(env, "-t", "pulled:1", str(context))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Status: Downloaded newer image for {base}" in result.stdout
        assert ok(env, "run", "--rm", "pulled:1") == "pulled\n"
        ok(env, "rmi", "pulled:1", base)


def test_args_before_from_are_not_in_a_stages_scope(env: dict[str, str], tmp_path: Path) -> None:
    """As Docker: an ARG before the first FROM serves FROM lines only, until the stage
    declares it again (FROM scratch included)."""
    context = tmp_path / "scope"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "ARG META=outside\nFROM scratch\nENV SEEN=[$META]\nARG META\nENV AGAIN=[$META]\n"
    )
    result = build(env, "-t", "scope:1", str(context))
    assert result.returncode == 0, result.stdout + result.stderr
    config = json.loads(ok(env, "image", "inspect", "scope:1"))[0]["Config"]
    assert "SEEN=[]" in config["Env"]
    assert "AGAIN=[outside]" in config["Env"]
    ok(env, "rmi", "scope:1")
