"""``pydocker build`` and ``builder prune`` against a real daemon: the context it sends
(with ``.dockerignore`` applied) builds an image that runs, the cache is reused, and the
timing lines come with each step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydockerd.testing.daemon import DaemonProcess

from client.tests.e2e import pydocker

pytestmark = pytest.mark.privileged

DOCKERFILE = """\
FROM busybox AS build
COPY . /src/
RUN ls -A /src > /listing.txt

FROM busybox
COPY --from=build /listing.txt /listing.txt
CMD ["cat", "/listing.txt"]
"""


def project(directory: Path) -> Path:
    (directory / "docs").mkdir(parents=True)
    (directory / "Dockerfile").write_text(DOCKERFILE)
    (directory / "app.py").write_text("print('hi')\n")
    (directory / "README.md").write_text("read me\n")
    (directory / "NOTES.md").write_text("not sent\n")
    (directory / "docs" / "guide.md").write_text("not sent either\n")
    (directory / ".dockerignore").write_text("*.md\n!README.md\ndocs\n")
    return directory


def test_build_run_rebuild_and_prune(engine: DaemonProcess, tmp_path: Path) -> None:
    context = project(tmp_path / "app")
    first = pydocker(engine, "build", "-t", "app:1", str(context), timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("Sending build context to Docker daemon")
    assert "Step 6/6 : CMD " in first.stdout
    assert first.stdout.endswith("Successfully tagged app:1\n")
    assert len(re.findall(r"^ ---> done in \d+\.\d\ds$", first.stderr, re.M)) == 6, first.stderr
    ran = pydocker(engine, "run", "--rm", "app:1")
    # the excluded files never came (.dockerignore and the Dockerfile, not excluded, did)
    assert ran.stdout.split() == [".dockerignore", "Dockerfile", "README.md", "app.py"]

    again = pydocker(engine, "build", "-t", "app:2", str(context), timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(" ---> Using cache") == 4  # all but the two FROMs

    prune = pydocker(engine, "builder", "prune", "-a", "-f")
    assert prune.returncode == 0, prune.stderr
    assert prune.stdout.splitlines()[-1].startswith("Total reclaimed space: ")


def test_dockerfile_from_stdin_and_failures(engine: DaemonProcess, tmp_path: Path) -> None:
    context = project(tmp_path / "app")
    quiet = pydocker(
        engine, "build", "-q", "-f", "-", str(context), stdin="FROM busybox\nRUN true\n"
    )
    assert quiet.returncode == 0, quiet.stderr
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", quiet.stdout)
    failed = pydocker(engine, "build", "-", stdin="FROM busybox\nRUN exit 3\n", timeout=300)
    assert failed.returncode == 3, failed.stderr
    assert failed.stderr.splitlines()[-1] == (
        "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    )
