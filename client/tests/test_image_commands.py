"""The image commands against a fake Engine API: the exact requests sent, and the exact
output and exit status, as docker 28 prints them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydocker.commands.image import (
    ReferenceError,
    familiar_name,
    normalize_reference,
    split_target,
)
from pydocker.formatting import decimal_size, human_duration

from client.tests.fakeengine import FakeDaemon, run, serve

DAY = 86400
SHA_A = "sha256:" + "a" * 64
SHA_B = "sha256:" + "b" * 64
DIGEST = "sha256:" + "d" * 64


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    with serve(tmp_path) as fake:
        yield fake


# -- units ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.45, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (59 * 60 + 59, "59 minutes"),
        (3600, "About an hour"),
        (3600 + 29 * 60, "About an hour"),
        (3600 + 31 * 60, "2 hours"),
        (3 * 3600 + 31 * 60, "4 hours"),
        (47 * 3600, "47 hours"),
        (47 * 3600 + 31 * 60, "2 days"),
        (13 * DAY + 5 * 3600, "13 days"),
        (14 * DAY, "2 weeks"),
        (30 * DAY, "4 weeks"),
        (44 * DAY, "6 weeks"),
        (60 * DAY, "2 months"),
        (729 * DAY, "24 months"),
        (730 * DAY, "2 years"),
        (3 * 365 * DAY + 60 * DAY, "3 years"),
    ],
)
def test_human_duration_thresholds(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "precision", "text"),
    [
        (0, 3, "0B"),
        (999, 3, "999B"),
        (1000, 3, "1kB"),
        (1200, 3, "1.2kB"),
        (4_260_000, 3, "4.26MB"),
        (4_265_000, 3, "4.26MB"),  # %.3g rounds half to even on the binary value, as Go
        (999_499, 3, "999kB"),
        (999_500, 3, "1e+03kB"),  # docker prints this too
        (1_234_567, 4, "1.235MB"),
        (7_000_000_000, 4, "7GB"),
    ],
)
def test_decimal_size(size: int, precision: int, text: str) -> None:
    assert decimal_size(size, precision) == text


def test_references_normalize_like_docker() -> None:
    assert normalize_reference("busybox") == ("docker.io/library/busybox", None, None)
    assert normalize_reference("me/app:1.0") == ("docker.io/me/app", "1.0", None)
    assert normalize_reference("localhost:5000/alpine:v1") == ("localhost:5000/alpine", "v1", None)
    assert normalize_reference(f"alpine@{DIGEST}") == ("docker.io/library/alpine", None, DIGEST)
    assert familiar_name("docker.io/library/busybox") == "busybox"
    assert familiar_name("docker.io/me/app") == "me/app"
    assert familiar_name("localhost:5000/alpine") == "localhost:5000/alpine"
    assert split_target("myimg") == ("docker.io/library/myimg", "latest")
    with pytest.raises(ReferenceError, match=r"repository name \(library/Foo\) must be lowercase"):
        normalize_reference("Foo")
    with pytest.raises(ReferenceError, match="refusing to create a tag with a digest"):
        split_target(f"alpine@{DIGEST}")


# -- images -----------------------------------------------------------------------------


def summary(image_id: str, tags: list[str], digests: list[str], days: int, size: int) -> Any:
    return {
        "Id": image_id,
        "ParentId": "",
        "RepoTags": tags,
        "RepoDigests": digests,
        "Created": int(time.time()) - days * DAY,
        "Size": size,
        "SharedSize": -1,
        "Labels": {},
        "Containers": -1,
    }


IMAGE_LIST = [
    summary(SHA_A, ["busybox:latest", "busybox:1.36"], [f"busybox@{DIGEST}"], 3, 4_261_000),
    summary(SHA_B, [], [], 21, 1200),
    summary("sha256:" + "c" * 64, [], [f"alpine@{DIGEST}"], 1, 0),
]


def test_images_table(daemon: FakeDaemon) -> None:
    daemon.reply("GET", "/images/json", IMAGE_LIST)
    result = run(daemon, "images")
    assert (result.status, result.stderr) == (0, "")
    assert result.out == (
        "REPOSITORY   TAG       IMAGE ID       CREATED        SIZE\n"
        "busybox      latest    aaaaaaaaaaaa   3 days ago     4.26MB\n"
        "busybox      1.36      aaaaaaaaaaaa   3 days ago     4.26MB\n"
        "<none>       <none>    bbbbbbbbbbbb   3 weeks ago    1.2kB\n"
        "alpine       <none>    cccccccccccc   24 hours ago   0B\n"
    )
    request = daemon.only()
    assert (request.method, request.path, request.query) == ("GET", "/images/json", [])


def test_images_flags_become_the_query(daemon: FakeDaemon) -> None:
    daemon.reply("GET", "/images/json", [])
    result = run(daemon, "image", "ls", "-a", "-f", "dangling=true", "busybox")
    assert result.status == 0
    assert result.out == "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
    query = dict(daemon.only().query)
    assert query["all"] == "1"
    assert json.loads(query["filters"]) == {
        "dangling": {"true": True},
        "reference": {"busybox": True},
    }


def test_images_digests_no_trunc_quiet_and_format(daemon: FakeDaemon) -> None:
    daemon.reply("GET", "/images/json", IMAGE_LIST[:1] + IMAGE_LIST[2:])
    digests = run(daemon, "images", "--digests")
    assert digests.out.splitlines() == [
        "REPOSITORY   TAG       DIGEST" + " " * 68 + "IMAGE ID       CREATED        SIZE",
        f"busybox      latest    {DIGEST}   aaaaaaaaaaaa   3 days ago     4.26MB",
        f"busybox      1.36      {DIGEST}   aaaaaaaaaaaa   3 days ago     4.26MB",
        f"alpine       <none>    {DIGEST}   cccccccccccc   24 hours ago   0B",
    ]
    quiet = run(daemon, "images", "-q", "--no-trunc")
    assert quiet.out == f"{SHA_A}\n{SHA_A}\n{'sha256:' + 'c' * 64}\n"
    custom = run(daemon, "images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}")
    assert custom.out == "busybox:latest 4.26MB\nbusybox:1.36 4.26MB\nalpine:<none> 0B\n"
    titled = run(daemon, "images", "--format", "table {{.ID}}\\t{{.CreatedSince}}")
    assert titled.out.splitlines()[0] == "IMAGE ID       CREATED"


def test_images_daemon_error(daemon: FakeDaemon) -> None:
    daemon.error("GET", "/images/json", 500, "boom")
    result = run(daemon, "images")
    assert (result.status, result.out, result.stderr) == (
        1,
        "",
        "Error response from daemon: boom\n",
    )


# -- inspect ----------------------------------------------------------------------------


def test_image_inspect_prints_found_then_errors(daemon: FakeDaemon) -> None:
    daemon.reply("GET", "/images/busybox/json", {"Id": SHA_A, "Config": {"Cmd": ["sh"]}})
    daemon.error("GET", "/images/nosuch/json", 404, "No such image: nosuch:latest")
    result = run(daemon, "image", "inspect", "busybox", "nosuch")
    assert result.status == 1
    assert result.out == (
        "[\n"
        "    {\n"
        f'        "Id": "{SHA_A}",\n'
        '        "Config": {\n'
        '            "Cmd": [\n'
        '                "sh"\n'
        "            ]\n"
        "        }\n"
        "    }\n"
        "]\n"
    )
    assert result.stderr == "Error response from daemon: No such image: nosuch:latest\n"
    assert daemon.calls() == [("GET", "/images/busybox/json"), ("GET", "/images/nosuch/json")]


def test_image_inspect_missing_and_template(daemon: FakeDaemon) -> None:
    daemon.error("GET", "/images/nosuch/json", 404, "No such image: nosuch:latest")
    missing = run(daemon, "image", "inspect", "nosuch")
    assert (missing.status, missing.out) == (1, "[]\n")
    daemon.reply("GET", "/images/busybox/json", {"Id": SHA_A, "Os": "linux", "Note": "<&>"})
    templated = run(daemon, "image", "inspect", "-f", "{{.Os}} {{.Id}}", "busybox")
    assert (templated.status, templated.out) == (0, f"linux {SHA_A}\n")
    daemon.reply("GET", "/images/plain/json", {"Id": SHA_A, "Note": "<&>", "E": "\u00e9"})
    as_sent = run(daemon, "image", "inspect", "plain")  # docker 28 prints the daemon's text
    assert '"Note": "<&>",\n        "E": "\\u00e9"' in as_sent.out


def test_inspect_falls_back_from_container_to_image(daemon: FakeDaemon) -> None:
    daemon.reply("GET", "/images/busybox/json", {"Id": SHA_A})
    result = run(daemon, "inspect", "--format", "{{.Id}}", "busybox")
    assert (result.status, result.out, result.stderr) == (0, f"{SHA_A}\n", "")
    assert daemon.calls() == [("GET", "/containers/busybox/json"), ("GET", "/images/busybox/json")]


def test_inspect_nothing_found(daemon: FakeDaemon) -> None:
    result = run(daemon, "inspect", "ghost")
    assert (result.status, result.out) == (1, "[]\n")
    assert result.stderr == "Error: No such object: ghost\n"
    assert daemon.calls()[:2] == [("GET", "/containers/ghost/json"), ("GET", "/images/ghost/json")]
    typed = run(daemon, "inspect", "--type", "image", "ghost")
    assert typed.stderr == "Error response from daemon: page not found: /images/ghost/json\n"
    assert daemon.calls()[-1] == ("GET", "/images/ghost/json")
    bad = run(daemon, "inspect", "--type", "box", "ghost")
    assert (bad.status, bad.stderr) == (1, '"box" is not a valid value for --type\n')


# -- tag / rmi --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "query"),
    [
        ("myimg", [("repo", "docker.io/library/myimg"), ("tag", "latest")]),
        ("localhost:5000/alpine:v1", [("repo", "localhost:5000/alpine"), ("tag", "v1")]),
        ("me/app:2", [("repo", "docker.io/me/app"), ("tag", "2")]),
    ],
)
def test_tag(daemon: FakeDaemon, target: str, query: list[tuple[str, str]]) -> None:
    daemon.reply("POST", "/images/busybox:latest/tag", b"", status=201)
    result = run(daemon, "tag", "busybox:latest", target)
    assert (result.status, result.out, result.stderr) == (0, "", "")
    request = daemon.only()
    assert (request.method, request.path, request.query) == (
        "POST",
        "/images/busybox:latest/tag",
        query,
    )


def test_tag_refuses_an_invalid_target(daemon: FakeDaemon) -> None:
    result = run(daemon, "image", "tag", "busybox", "Bad")
    assert result.status == 1
    assert result.stderr == (
        'Error parsing reference: "Bad" is not a valid repository/tag: '
        "invalid reference format: repository name (library/Bad) must be lowercase\n"
    )
    assert daemon.calls() == []


def test_rmi_goes_on_after_an_error(daemon: FakeDaemon) -> None:
    daemon.reply("DELETE", "/images/busybox", [{"Untagged": "busybox:latest"}, {"Deleted": SHA_A}])
    daemon.error("DELETE", "/images/nosuch", 404, "No such image: nosuch:latest")
    daemon.error("DELETE", "/images/used", 409, "conflict: unable to remove repository reference")
    result = run(daemon, "rmi", "nosuch", "busybox", "used")
    assert result.status == 1
    assert result.out == f"Untagged: busybox:latest\nDeleted: {SHA_A}\n"
    assert result.stderr == (
        "Error response from daemon: No such image: nosuch:latest\n"
        "Error response from daemon: conflict: unable to remove repository reference\n"
    )
    assert daemon.calls() == [
        ("DELETE", "/images/nosuch"),
        ("DELETE", "/images/busybox"),
        ("DELETE", "/images/used"),
    ]
    assert all(r.query == [] for r in daemon.requests if r.method == "DELETE")


def test_rmi_force_ignores_missing_images(daemon: FakeDaemon) -> None:
    daemon.error("DELETE", "/images/nosuch", 404, "No such image: nosuch:latest")
    result = run(daemon, "image", "rm", "-f", "--no-prune", "nosuch")
    assert (result.status, result.out) == (0, "")
    assert result.stderr == "Error response from daemon: No such image: nosuch:latest\n"
    assert daemon.only().query == [("force", "1"), ("noprune", "1")]


# -- history ----------------------------------------------------------------------------

LONG_COMMAND = '/bin/sh -c #(nop)\tCMD ["sh" "-c" "echo hello world and more"]'


def history_items() -> list[dict[str, Any]]:
    now = int(time.time())
    return [
        {
            "Id": SHA_A,
            "Created": now - 2 * 3600,
            "CreatedBy": LONG_COMMAND,
            "Tags": ["busybox:latest"],
            "Size": 0,
            "Comment": "",
        },
        {
            "Id": "<missing>",
            "Created": now - 10 * DAY,
            "CreatedBy": "/bin/sh -c #(nop) ADD file:abc in / ",
            "Tags": None,
            "Size": 4_261_000,
            "Comment": "imported",
        },
    ]


def test_history_table(daemon: FakeDaemon) -> None:
    daemon.reply("GET", "/images/busybox/history", history_items())
    result = run(daemon, "history", "busybox")
    assert (result.status, result.stderr) == (0, "")
    cut = LONG_COMMAND.replace("\t", " ")[:44] + "…"
    assert result.out.splitlines() == [
        "IMAGE          CREATED       CREATED BY" + " " * 38 + "SIZE      COMMENT",
        f"aaaaaaaaaaaa   2 hours ago   {cut}   0B",
        "<missing>      10 days ago   /bin/sh -c #(nop) ADD file:abc in /             "
        "4.26MB    imported",
    ]
    assert daemon.only().path == "/images/busybox/history"


def test_history_raw_quiet_and_no_trunc(daemon: FakeDaemon) -> None:
    items = history_items()
    daemon.reply("GET", "/images/busybox/history", items)
    raw = run(
        daemon, "image", "history", "-H=false", "--format", "{{.Size}}|{{.CreatedAt}}", "busybox"
    )
    assert raw.status == 0
    sizes = [line.split("|")[0] for line in raw.out.splitlines()]
    assert sizes == ["0", "4261000"]
    assert all("T" in line.split("|")[1] for line in raw.out.splitlines())
    quiet = run(daemon, "history", "-q", "busybox")
    assert quiet.out == "aaaaaaaaaaaa\n<missing>\n"
    full = run(daemon, "history", "--no-trunc", "--format", "{{.ID}} {{.CreatedBy}}", "busybox")
    assert full.out.splitlines()[0] == f"{SHA_A} {LONG_COMMAND.replace(chr(9), ' ')}"
    bad = run(daemon, "history", "-H=maybe", "busybox")
    assert bad.status == 125
    assert bad.stderr.startswith('invalid argument "maybe" for "-H, --human" flag')


# -- save / load / import ---------------------------------------------------------------

TAR = b"ustar-bytes\x00" * 5000


def test_save_to_a_file_and_to_stdout(daemon: FakeDaemon, tmp_path: Path) -> None:
    daemon.reply("GET", "/images/get", TAR)
    target = tmp_path / "out.tar"
    result = run(daemon, "save", "-o", str(target), "busybox", "alpine:3")
    assert (result.status, result.out, result.stderr) == (0, "", "")
    assert target.read_bytes() == TAR
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
    assert daemon.only().query == [("names", "busybox"), ("names", "alpine:3")]
    piped = run(daemon, "image", "save", "busybox")
    assert (piped.status, piped.stdout) == (0, TAR)


def test_save_refuses_a_terminal_and_keeps_no_file_on_error(
    daemon: FakeDaemon, tmp_path: Path
) -> None:
    refused = run(daemon, "save", "busybox", tty_stdout=True)
    assert refused.status == 1
    assert refused.stderr == (
        "cowardly refusing to save to a terminal. Use the -o flag or redirect\n"
    )
    daemon.error("GET", "/images/get", 404, "No such image: nosuch:latest")
    target = tmp_path / "out.tar"
    failed = run(daemon, "save", "-o", str(target), "nosuch")
    assert (failed.status, failed.stderr) == (
        1,
        "Error response from daemon: No such image: nosuch:latest\n",
    )
    assert list(tmp_path.iterdir()) == [daemon.socket]
    bad_dir = run(daemon, "save", "-o", str(tmp_path / "no" / "x.tar"), "busybox")
    assert bad_dir.stderr == (
        f"failed to save image: invalid output path: stat {tmp_path / 'no'}: "
        "no such file or directory\n"
    )


def test_load_streams_the_file(daemon: FakeDaemon, tmp_path: Path) -> None:
    archive = tmp_path / "in.tar"
    archive.write_bytes(TAR)
    daemon.reply(
        "POST",
        "/images/load",
        b'{"stream":"Loaded image: busybox:latest\\n"}\r\n{"aux":{"x":1}}\r\n',
    )
    result = run(daemon, "load", "-i", str(archive))
    assert (result.status, result.out, result.stderr) == (0, "Loaded image: busybox:latest\n", "")
    request = daemon.only()
    assert (request.method, request.path, request.query) == (
        "POST",
        "/images/load",
        [("quiet", "1")],
    )
    assert request.body == TAR
    assert request.headers["Content-Type"] == "application/x-tar"


def test_load_from_stdin_and_errors(daemon: FakeDaemon, tmp_path: Path) -> None:
    daemon.reply(
        "POST",
        "/images/load",
        b'{"errorDetail":{"message":"unexpected EOF"},"error":"unexpected EOF"}\n',
    )
    result = run(daemon, "image", "load", "-q", stdin=b"partial")
    assert (result.status, result.out, result.stderr) == (1, "", "unexpected EOF\n")
    assert daemon.only().body == b"partial"
    terminal = run(daemon, "load", tty_stdin=True)
    assert (terminal.status, terminal.stderr) == (
        1,
        "requested load from stdin, but stdin is empty\n",
    )
    missing = run(daemon, "load", "-i", str(tmp_path / "nope.tar"))
    assert missing.stderr == f"open {tmp_path / 'nope.tar'}: no such file or directory\n"
    assert len(daemon.calls()) == 1


def test_import_sends_the_tar_and_prints_the_id(daemon: FakeDaemon, tmp_path: Path) -> None:
    archive = tmp_path / "rootfs.tar"
    archive.write_bytes(TAR)
    daemon.reply("POST", "/images/create", b'{"status":"' + SHA_B.encode() + b'"}\r\n')
    result = run(
        daemon,
        "import",
        "-c",
        "ENV A=1",
        "--change",
        'CMD ["sh"]',
        "-m",
        "first",
        str(archive),
        "me/rootfs:1",
    )
    assert (result.status, result.out, result.stderr) == (0, f"{SHA_B}\n", "")
    request = daemon.only()
    assert request.query == [
        ("changes", "ENV A=1"),
        ("changes", 'CMD ["sh"]'),
        ("fromSrc", "-"),
        ("message", "first"),
        ("repo", "me/rootfs:1"),
    ]
    assert request.body == TAR
    piped = run(daemon, "image", "import", "-", stdin=b"from-stdin")
    assert (piped.status, piped.out) == (0, f"{SHA_B}\n")
    assert daemon.requests[-1].body == b"from-stdin"
    assert daemon.requests[-1].query == [("fromSrc", "-")]


# -- prune ------------------------------------------------------------------------------


def test_prune_forced(daemon: FakeDaemon) -> None:
    daemon.reply(
        "POST",
        "/images/prune",
        {
            "ImagesDeleted": [{"Untagged": "old:1"}, {"Deleted": SHA_B}],
            "SpaceReclaimed": 1_234_567,
        },
    )
    result = run(daemon, "image", "prune", "-f", "--filter", "until=24h")
    assert (result.status, result.stderr) == (0, "")
    assert result.out == (
        f"Deleted Images:\nuntagged: old:1\ndeleted: {SHA_B}\n\nTotal reclaimed space: 1.235MB\n"
    )
    request = daemon.only()
    assert (request.method, request.path) == ("POST", "/images/prune")
    assert json.loads(dict(request.query)["filters"]) == {
        "dangling": {"true": True},
        "until": {"24h": True},
    }


def test_prune_asks_first(daemon: FakeDaemon) -> None:
    daemon.reply("POST", "/images/prune", {"ImagesDeleted": None, "SpaceReclaimed": 0})
    declined = run(daemon, "image", "prune", stdin=b"n\n")
    assert (declined.status, declined.stderr) == (0, "")
    assert declined.out == (
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] "
    )
    assert daemon.calls() == []
    accepted = run(daemon, "image", "prune", "-a", stdin=b"Y\n")
    assert accepted.out == (
        "WARNING! This will remove all images without at least one container associated "
        "to them.\nAre you sure you want to continue? [y/N] Total reclaimed space: 0B\n"
    )
    assert json.loads(dict(daemon.only().query)["filters"]) == {"dangling": {"false": True}}


# -- system df --------------------------------------------------------------------------


def test_system_df(daemon: FakeDaemon) -> None:
    images = [
        dict(summary(SHA_A, ["busybox:latest"], [], 3, 4_000_000), SharedSize=0, Containers=1),
        dict(summary(SHA_B, ["old:1"], [], 9, 1_000_000), SharedSize=0, Containers=0),
    ]
    daemon.reply(
        "GET",
        "/system/df",
        {
            "LayersSize": 5_000_000,
            "Images": images,
            "Containers": [
                {"Id": "c" * 64, "State": "running", "SizeRw": 100},
                {"Id": "d" * 64, "State": "exited", "SizeRw": 300},
            ],
            "Volumes": [
                {"Name": "v1", "UsageData": {"Size": 2000, "RefCount": 0}},
                {"Name": "v2", "UsageData": {"Size": -1, "RefCount": 1}},
            ],
            "BuildCache": [],
        },
    )
    result = run(daemon, "system", "df")
    assert (result.status, result.stderr) == (0, "")
    assert result.out == (
        "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"
        "Images          2         1         5MB       1MB (20%)\n"
        "Containers      2         1         400B      300B (75%)\n"
        "Local Volumes   2         1         2kB       2kB (100%)\n"
        "Build Cache     0         0         0B        0B\n"
    )
    assert daemon.only().path == "/system/df"
    formatted = run(daemon, "system", "df", "--format", "{{.Type}}={{.Reclaimable}}")
    assert formatted.out.splitlines()[0] == "Images=1MB (20%)"
    verbose = run(daemon, "system", "df", "-v")
    assert verbose.status == 0
    assert verbose.out.startswith("Images space usage:\n\nREPOSITORY   TAG ")
    assert "\nLocal Volumes space usage:\n\nVOLUME NAME   LINKS     SIZE\nv1" in verbose.out
