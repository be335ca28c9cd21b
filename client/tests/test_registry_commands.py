"""pull, push, login and logout against a fake Engine API that speaks those endpoints with
streams in moby's format: the requests sent (query, ``X-Registry-Auth``, the ``/auth``
body), the docker config file written, and the output, on a terminal and off one."""

from __future__ import annotations

import base64
import io
import json
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydocker.config import HUB_KEY, AuthConfig, ConfigFile, hostname, server_key
from pydocker.jsonmessage import StreamError, display_json_messages, progress_bar

from client.tests.fakeengine import FakeDaemon, Result, Terminal, run, serve

DIGEST = "sha256:" + "d" * 64
LAYER_A, LAYER_B = "9c0abc9c5bd3", "1f2e3d4c5b6a"


def lines(*messages: dict[str, Any]) -> bytes:
    """A stream as moby writes it: one JSON object a line."""
    return b"".join(json.dumps(m).encode() + b"\r\n" for m in messages)


PULL_STREAM = [
    {"status": "Pulling from library/busybox", "id": "latest"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": LAYER_A},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": LAYER_B},
    {
        "status": "Downloading",
        "progressDetail": {"current": 1048576, "total": 2097152},
        "progress": "[=========================>                         ]  1.049MB/2.097MB",
        "id": LAYER_A,
    },
    {"status": "Download complete", "progressDetail": {}, "id": LAYER_A},
    {"status": "Pull complete", "progressDetail": {}, "id": LAYER_B},
    {"status": f"Digest: {DIGEST}"},
    {"status": "Status: Downloaded newer image for busybox:latest"},
]
PUSH_STREAM = [
    {"status": "The push refers to repository [127.0.0.1:5000/x]"},
    {"status": "Preparing", "progressDetail": {}, "id": LAYER_A},
    {"status": "Pushing", "progressDetail": {"current": 512, "total": 1024}, "id": LAYER_A},
    {"status": "Pushed", "progressDetail": {}, "id": LAYER_A},
    {"status": f"latest: digest: {DIGEST} size: 527", "progressDetail": {}},
    {"progressDetail": {}, "aux": {"Tag": "latest", "Digest": DIGEST, "Size": 527}},
]
PULL_TEXT = (
    "latest: Pulling from library/busybox\n"
    f"{LAYER_A}: Pulling fs layer\n"
    f"{LAYER_B}: Pulling fs layer\n"
    f"{LAYER_A}: Download complete\n"
    f"{LAYER_B}: Pull complete\n"
    f"Digest: {DIGEST}\n"
    "Status: Downloaded newer image for busybox:latest\n"
)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    with serve(tmp_path) as fake:
        yield fake


@pytest.fixture
def config_dir(daemon: FakeDaemon) -> Path:
    """The docker config directory ``run`` gives the commands."""
    return daemon.socket.parent / "docker-config"


def write_config(config_dir: Path, data: dict[str, Any]) -> Path:
    config_dir.mkdir(exist_ok=True)
    path = config_dir / "config.json"
    path.write_text(json.dumps(data))
    return path


def read_config(config_dir: Path) -> Any:
    return json.loads((config_dir / "config.json").read_text())


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def auth_header(request: Any) -> Any:
    return json.loads(base64.urlsafe_b64decode(request.headers["X-Registry-Auth"]))


# -- units ------------------------------------------------------------------------------


def test_server_names_are_keyed_as_docker_keys_them() -> None:
    for hub in (None, "", "docker.io", "index.docker.io", "registry-1.docker.io", HUB_KEY):
        assert server_key(hub) == HUB_KEY
    assert server_key("https://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    assert server_key("http://localhost:5000") == "localhost:5000"
    assert server_key("127.0.0.1:5000") == "127.0.0.1:5000"
    assert server_key("registry.example.com/some/path") == "registry.example.com"
    assert hostname("https://[::1]") == "::1"
    assert hostname("https://user@[::1]:5000/v2/") == "[::1]:5000"


def test_auth_config_encodes_as_go_does() -> None:
    assert AuthConfig().encode() == "e30="
    assert AuthConfig("a").encode() == "eyJ1c2VybmFtZSI6ImEifQ=="  # padded
    assert AuthConfig("~~~").encode() == "eyJ1c2VybmFtZSI6In5-fiJ9"  # the URL alphabet
    encoded = AuthConfig("me", "p<w>", "127.0.0.1:5000").encode()
    assert base64.urlsafe_b64decode(encoded) == (
        b'{"username":"me","password":"p\\u003cw\\u003e","serveraddress":"127.0.0.1:5000"}'
    )


@pytest.mark.parametrize(
    ("detail", "width", "text"),
    [
        ({}, 200, ""),
        ({"current": 0, "total": 0}, 200, ""),
        ({"current": 1234}, 200, " 1.234kB"),
        ({"current": 3, "units": "layers"}, 200, "3 layers"),
        (
            {"current": 12_300_000, "total": 45_600_000},
            120,
            f"[{'=' * 13}>{' ' * 37}]   12.3MB/45.6MB",  # 26.97%: 13 cells of 50
        ),
        ({"current": 12_300_000, "total": 45_600_000}, 110, "  12.3MB/45.6MB"),
        ({"current": 50_000_000, "total": 45_600_000}, 80, "    50MB"),
        ({"current": 2, "total": 4, "units": "items"}, 80, "2/4 items"),
        ({"current": 2, "total": 4, "hidecounts": True}, 80, ""),
        ({"current": 10, "total": 100, "start": 1000}, 80, "     10B/100B 1m30s"),
        ({"current": 10, "total": 100, "start": 1000}, 50, "     10B/100B"),
    ],
)
def test_progress_bar(detail: dict[str, Any], width: int, text: str) -> None:
    assert progress_bar(detail, width, now=1010) == text


def test_terminal_rendering_moves_between_the_lines_of_each_id() -> None:
    out = io.StringIO()
    display_json_messages(PULL_STREAM[:5], out, terminal=True)
    bar = "[=========================>                         ]  1.049MB/2.097MB"
    assert out.getvalue() == (
        "latest: Pulling from library/busybox\n"
        f"\n\x1b[1A\x1b[2K\r{LAYER_A}: Pulling fs layer \r\x1b[1B"
        f"\n\x1b[1A\x1b[2K\r{LAYER_B}: Pulling fs layer \r\x1b[1B"
        # the first layer's line is two up: redrawn there, then back down
        f"\x1b[2A\x1b[2K\r{LAYER_A}: Downloading {bar}\r\x1b[2B"
        f"\x1b[2A\x1b[2K\r{LAYER_A}: Download complete \r\x1b[2B"
    )


def test_a_message_without_progress_forgets_the_lines() -> None:
    out = io.StringIO()
    stream = [
        {"status": "Waiting", "progressDetail": {}, "id": "a"},
        {"status": "Digest: x"},  # no id: what follows starts below it
        {"status": "Done", "progressDetail": {}, "id": "a"},
    ]
    display_json_messages(stream, out, terminal=True)
    assert out.getvalue() == (
        "\n\x1b[1A\x1b[2K\ra: Waiting \r\x1b[1BDigest: x\n\n\x1b[1A\x1b[2K\ra: Done \r\x1b[1B"
    )


def test_plain_rendering_skips_progress_and_aux_and_stops_at_an_error() -> None:
    out = io.StringIO()
    seen: list[Any] = []
    display_json_messages([*PULL_STREAM, {"aux": {"ID": "x"}}], out, aux=seen.append)
    assert out.getvalue() == PULL_TEXT
    assert seen == [{"aux": {"ID": "x"}}]
    quiet = [{"error": "only the old field"}, {"stream": "Step 1/1\n"}, {"time": 0, "id": "x"}]
    display_json_messages(quiet, out := io.StringIO())
    assert out.getvalue() == "\nStep 1/1\nx: \n"  # docker ignores a bare "error"
    failing = [{"status": "a"}, {"errorDetail": {"code": 3, "message": "boom"}, "error": "boom"}]
    with pytest.raises(StreamError, match=r"^boom$") as raised:
        display_json_messages(failing, out := io.StringIO())
    assert raised.value.code == 3
    assert out.getvalue() == "a\n"


# -- pull -------------------------------------------------------------------------------


def pulled(daemon: FakeDaemon, *args: str, stream: bytes | None = None) -> Result:
    daemon.reply("POST", "/images/create", lines(*PULL_STREAM) if stream is None else stream)
    return run(daemon, "pull", *args)


@pytest.mark.parametrize(
    ("args", "query", "reference"),
    [
        (["busybox"], [("tag", "latest")], "docker.io/library/busybox:latest"),
        (["busybox:1.36"], [("tag", "1.36")], "docker.io/library/busybox:1.36"),
        ([f"busybox@{DIGEST}"], [("tag", DIGEST)], f"docker.io/library/busybox@{DIGEST}"),
        (
            [f"busybox:1@{DIGEST}"],
            [("tag", DIGEST)],
            f"docker.io/library/busybox:1@{DIGEST}",
        ),
        (["-a", "busybox"], [], "docker.io/library/busybox"),
        (
            ["--platform", "Linux/AMD64", "busybox:1"],
            [("platform", "linux/amd64"), ("tag", "1")],
            "docker.io/library/busybox:1",
        ),
    ],
)
def test_pull_query(
    daemon: FakeDaemon, args: list[str], query: list[tuple[str, str]], reference: str
) -> None:
    result = pulled(daemon, *args)
    assert (result.status, result.stderr) == (0, "")
    default = "Using default tag: latest\n" if args == ["busybox"] else ""
    assert result.out == f"{default}{PULL_TEXT}{reference}\n"
    request = daemon.only()
    assert (request.method, request.path) == ("POST", "/images/create")
    assert request.query == [("fromImage", "docker.io/library/busybox"), *query]
    assert request.headers["X-Registry-Auth"] == "e30="


def test_pull_of_another_registry_quietly(daemon: FakeDaemon) -> None:
    result = pulled(daemon, "-q", "127.0.0.1:5000/team/app")
    assert (result.status, result.out, result.stderr) == (0, "127.0.0.1:5000/team/app:latest\n", "")
    assert daemon.only().query == [("fromImage", "127.0.0.1:5000/team/app"), ("tag", "latest")]


def test_pull_refuses_before_sending(daemon: FakeDaemon) -> None:
    tagged = run(daemon, "pull", "-a", "busybox:1")
    assert (tagged.status, tagged.stderr) == (1, "tag can't be used with --all-tags/-a\n")
    bad = run(daemon, "pull", "Busybox")
    assert bad.status == 1
    assert "repository name (library/Busybox) must be lowercase" in bad.stderr
    missing = run(daemon, "pull")
    assert missing.status == 1
    assert "'pydocker pull' requires 1 argument" in missing.stderr
    assert daemon.calls() == []


def test_pull_sends_the_credentials_of_the_image_registry(
    daemon: FakeDaemon, config_dir: Path
) -> None:
    write_config(
        config_dir,
        {
            "auths": {
                HUB_KEY: {"auth": basic("hubuser", "hubpw")},
                "https://127.0.0.1:5000": {"auth": basic("me", "s3cret")},
                "127.0.0.1:6000": {"auth": basic("tok", ""), "identitytoken": "id-token"},
            }
        },
    )
    assert pulled(daemon, "-q", "busybox").status == 0
    assert auth_header(daemon.requests[-1]) == {
        "username": "hubuser",
        "password": "hubpw",
        "serveraddress": HUB_KEY,
    }
    assert pulled(daemon, "-q", "127.0.0.1:5000/x:1").status == 0
    assert auth_header(daemon.requests[-1]) == {  # a legacy key: found by its host
        "username": "me",
        "password": "s3cret",
        "serveraddress": "https://127.0.0.1:5000",
    }
    assert pulled(daemon, "-q", "127.0.0.1:6000/x").status == 0
    assert auth_header(daemon.requests[-1]) == {
        "username": "tok",
        "serveraddress": "127.0.0.1:6000",
        "identitytoken": "id-token",
    }
    assert pulled(daemon, "-q", "127.0.0.1:7000/x").status == 0
    assert daemon.requests[-1].headers["X-Registry-Auth"] == "e30="


def test_pull_errors(daemon: FakeDaemon) -> None:
    failing = lines(
        PULL_STREAM[0],
        {"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"},
    )
    streamed = pulled(daemon, "busybox:1", stream=failing)
    assert (streamed.status, streamed.stderr) == (1, "manifest unknown\n")
    assert streamed.out == "latest: Pulling from library/busybox\n"  # no reference printed
    daemon.error("POST", "/images/create", 404, "pull access denied for nope")
    not_found = run(daemon, "pull", "nope")
    assert (not_found.status, not_found.stderr) == (
        1,
        "Error response from daemon: pull access denied for nope\n",
    )
    assert not_found.out == "Using default tag: latest\n"
    daemon.error("POST", "/images/create", 401, "unauthorized: authentication required")
    unauthorized = run(daemon, "image", "pull", "-q", "127.0.0.1:5000/x")
    assert (unauthorized.status, unauthorized.out, unauthorized.stderr) == (
        1,
        "",
        "Error response from daemon: unauthorized: authentication required\n",
    )


def test_pull_on_a_terminal_draws_bars_as_wide_as_it_is(daemon: FakeDaemon) -> None:
    daemon.reply("POST", "/images/create", lines(*PULL_STREAM))
    command = [sys.executable, "-m", "pydocker", "-H", daemon.host, "pull", "busybox"]
    environment = {"DOCKER_CONFIG": str(daemon.socket.parent / "docker-config")}
    wide = Terminal(command, env=environment, cols=120)
    assert wide.wait() == 0
    text = wide.output.decode()
    assert f"\x1b[2A\x1b[2K\r{LAYER_A}: Downloading [=========================>" in text
    assert text.endswith("docker.io/library/busybox:latest\r\n")
    narrow = Terminal(command, env=environment, cols=80)
    assert narrow.wait() == 0
    assert f"{LAYER_A}: Downloading  1.049MB/2.097MB\r" in narrow.output.decode()
    assert "[=" not in narrow.output.decode()


# -- push -------------------------------------------------------------------------------

PUSH_TEXT = (
    "The push refers to repository [127.0.0.1:5000/x]\n"
    f"{LAYER_A}: Preparing\n"
    f"{LAYER_A}: Pushed\n"
    f"latest: digest: {DIGEST} size: 527\n"
)
PUSH_PATH = "/images/127.0.0.1:5000/x/push"


def test_push(daemon: FakeDaemon, config_dir: Path) -> None:
    write_config(config_dir, {"auths": {"127.0.0.1:5000": {"auth": basic("me", "pw")}}})
    daemon.reply("POST", PUSH_PATH, lines(*PUSH_STREAM))
    result = run(daemon, "push", "127.0.0.1:5000/x")
    assert (result.status, result.stderr) == (0, "")
    assert result.out == "Using default tag: latest\n" + PUSH_TEXT
    request = daemon.only()
    assert request.query == [("tag", "latest")]
    assert auth_header(request) == {
        "username": "me",
        "password": "pw",
        "serveraddress": "127.0.0.1:5000",
    }
    every = run(daemon, "image", "push", "-a", "127.0.0.1:5000/x")
    assert (every.status, every.out) == (0, PUSH_TEXT)
    assert daemon.requests[-1].query == []
    quiet = run(daemon, "push", "-q", "127.0.0.1:5000/x:latest")
    assert (quiet.status, quiet.out) == (0, "127.0.0.1:5000/x:latest\n")


def test_push_of_a_hub_image_uses_its_familiar_name(daemon: FakeDaemon) -> None:
    daemon.reply("POST", "/images/me/app/push", lines(*PUSH_STREAM))
    assert run(daemon, "push", "-q", "docker.io/me/app:2").out == "docker.io/me/app:2\n"
    assert daemon.only().query == [("tag", "2")]
    daemon.reply("POST", "/images/busybox/push", lines(*PUSH_STREAM))
    assert run(daemon, "push", "-q", "busybox").status == 0


def test_push_errors(daemon: FakeDaemon) -> None:
    digest = run(daemon, "push", f"127.0.0.1:5000/x@{DIGEST}")
    assert (digest.status, digest.stderr) == (1, "cannot push a digest reference\n")
    tagged = run(daemon, "push", "-a", "127.0.0.1:5000/x:1")
    assert (tagged.status, tagged.stderr) == (1, "tag can't be used with --all-tags/-a\n")
    assert daemon.calls() == []
    daemon.error("POST", PUSH_PATH, 404, "An image does not exist locally with the tag: x")
    missing = run(daemon, "push", "127.0.0.1:5000/x")
    assert (missing.status, missing.stderr) == (
        1,
        "Error response from daemon: An image does not exist locally with the tag: x\n",
    )
    daemon.error("POST", PUSH_PATH, 401, "unauthorized")
    refused = run(daemon, "push", "-q", "127.0.0.1:5000/x")  # no terminal: no prompt
    assert (refused.status, refused.stderr) == (1, "Error response from daemon: unauthorized\n")
    denied = {"errorDetail": {"message": "denied: requested access"}, "error": "x"}
    daemon.reply("POST", PUSH_PATH, lines(*PUSH_STREAM[:2], denied))
    streamed = run(daemon, "push", "127.0.0.1:5000/x:1")
    assert (streamed.status, streamed.stderr) == (1, "denied: requested access\n")


def test_push_asks_for_a_login_after_a_401_on_a_terminal(daemon: FakeDaemon) -> None:
    daemon.reply_once("POST", PUSH_PATH, {"message": "unauthorized"}, 401)
    daemon.reply("POST", PUSH_PATH, lines(*PUSH_STREAM))
    command = [sys.executable, "-m", "pydocker", "-H", daemon.host, "push", "127.0.0.1:5000/x"]
    term = Terminal(command, env={"DOCKER_CONFIG": str(daemon.socket.parent / "cfg")})
    term.expect("Login prior to push:")
    term.expect("Username: ")
    term.send("me\n")
    term.expect("Password: ")
    term.send("typed\n")
    assert term.wait() == 0
    assert "typed" not in term.output.decode()  # not echoed
    first, second = (r for r in daemon.requests if r.path == PUSH_PATH)
    assert first.headers["X-Registry-Auth"] == "e30="
    assert auth_header(second) == {
        "username": "me",
        "password": "typed",
        "serveraddress": "127.0.0.1:5000",
    }
    assert not (daemon.socket.parent / "cfg" / "config.json").exists()  # not stored


# -- login ------------------------------------------------------------------------------

SUCCEEDED = {"Status": "Login Succeeded", "IdentityToken": ""}


def test_login_with_password_stdin_stores_the_credentials(
    daemon: FakeDaemon, config_dir: Path
) -> None:
    others = {"auths": {"other:1": {"auth": basic("o", "p")}}, "psFormat": "{{.ID}}"}
    write_config(config_dir, {**others, "detachKeys": "ctrl-x"})
    daemon.reply("POST", "/auth", SUCCEEDED)
    result = run(
        daemon,
        "login",
        "-u",
        "me",
        "--password-stdin",
        "http://127.0.0.1:5000/v2/",
        stdin=b"s3cret\n",
    )
    assert (result.status, result.out, result.stderr) == (0, "Login Succeeded\n", "")
    assert daemon.only().json() == {
        "username": "me",
        "password": "s3cret",
        "serveraddress": "127.0.0.1:5000",
    }
    assert read_config(config_dir) == {
        "auths": {
            "other:1": {"auth": basic("o", "p")},
            "127.0.0.1:5000": {"auth": basic("me", "s3cret")},
        },
        "psFormat": "{{.ID}}",
        "detachKeys": "ctrl-x",
    }
    path = config_dir / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith('{\n\t"auths": {')
    assert sorted(p.name for p in config_dir.iterdir()) == ["config.json"]  # no temporary
    # a new login replaces the entry; an identity token stands in for the password
    daemon.reply("POST", "/auth", {"Status": "Login Succeeded", "IdentityToken": "tok"})
    again = run(daemon, "login", "-u", "me", "-p", "new", "127.0.0.1:5000")
    assert (again.status, again.out) == (0, "Login Succeeded\n")
    assert (
        again.stderr == "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n"
    )
    assert read_config(config_dir)["auths"]["127.0.0.1:5000"] == {
        "auth": basic("me", ""),
        "identitytoken": "tok",
    }


def test_login_to_the_hub_by_any_of_its_names(daemon: FakeDaemon, config_dir: Path) -> None:
    daemon.reply("POST", "/auth", SUCCEEDED)
    for name in ("docker.io", "registry-1.docker.io"):
        result = run(daemon, "login", "-u", "me", "--password-stdin", name, stdin=b"pw")
        assert result.status == 0
    result = run(daemon, "login", "-u", "me", "-p", "pw")
    assert result.status == 0
    assert {r.json()["serveraddress"] for r in daemon.requests if r.path == "/auth"} == {HUB_KEY}
    assert read_config(config_dir) == {"auths": {HUB_KEY: {"auth": basic("me", "pw")}}}


def test_login_refusals(daemon: FakeDaemon, config_dir: Path) -> None:
    no_user = run(daemon, "login", "--password-stdin", stdin=b"pw\n")
    assert (no_user.status, no_user.stderr) == (
        1,
        "Must provide --username with --password-stdin\n",
    )
    both = run(daemon, "login", "-u", "a", "-p", "b", "--password-stdin")
    assert both.status == 1
    assert both.stderr.endswith("--password and --password-stdin are mutually exclusive\n")
    interactive = run(daemon, "login", "127.0.0.1:5000")
    assert (interactive.status, interactive.stderr) == (
        1,
        "Error: Cannot perform an interactive login from a non TTY device\n",
    )
    extra = run(daemon, "login", "a", "b")
    assert extra.status == 1
    assert "'pydocker login' requires at most 1 argument" in extra.stderr
    assert daemon.calls() == []
    daemon.error("POST", "/auth", 401, "login attempt to http://127.0.0.1:5000/v2/ failed")
    refused = run(daemon, "login", "-u", "me", "--password-stdin", "127.0.0.1:5000", stdin=b"x")
    assert (refused.status, refused.out, refused.stderr) == (
        1,
        "",
        "Error response from daemon: login attempt to http://127.0.0.1:5000/v2/ failed\n",
    )
    assert not (config_dir / "config.json").exists()


def test_login_tries_the_stored_credentials_first(daemon: FakeDaemon, config_dir: Path) -> None:
    write_config(config_dir, {"auths": {"127.0.0.1:5000": {"auth": basic("me", "old")}}})
    daemon.reply("POST", "/auth", SUCCEEDED)
    result = run(daemon, "login", "127.0.0.1:5000")
    assert (result.status, result.stderr) == (0, "")
    assert result.out == (
        "Authenticating with existing credentials... [Username: me]\n"
        "To login with a different account, run 'pydocker logout' followed by "
        "'pydocker login'\n\nLogin Succeeded\n"
    )
    assert daemon.only().json()["password"] == "old"
    daemon.error("POST", "/auth", 401, "unauthorized")
    expired = run(daemon, "login", "127.0.0.1:5000")  # then a prompt, which needs a terminal
    assert expired.status == 1
    assert expired.stderr == (
        "Stored credentials invalid or expired\n"
        "Error: Cannot perform an interactive login from a non TTY device\n"
    )


def test_login_prompts_on_a_terminal(daemon: FakeDaemon, config_dir: Path) -> None:
    write_config(config_dir, {"auths": {HUB_KEY: {"identitytoken": "t"}}})
    daemon.reply("POST", "/auth", SUCCEEDED)
    command = [sys.executable, "-m", "pydocker", "-H", daemon.host, "login"]
    term = Terminal(command, env={"DOCKER_CONFIG": str(config_dir), "DOCKER_CLI_HINTS": "0"})
    term.expect("Username: ")
    term.send("hubby\n")
    term.expect("Password: ")
    term.send("pa55word\n")
    assert term.wait() == 0
    text = term.output.decode()
    assert text.startswith("Log in with your Docker ID or email address")
    assert "hubby" in text
    assert "pa55word" not in text
    assert text.endswith("Login Succeeded\r\n")
    assert daemon.only().json() == {
        "username": "hubby",
        "password": "pa55word",
        "serveraddress": HUB_KEY,
    }
    assert read_config(config_dir)["auths"][HUB_KEY] == {"auth": basic("hubby", "pa55word")}


# -- logout -----------------------------------------------------------------------------


def test_logout(daemon: FakeDaemon, config_dir: Path) -> None:
    write_config(
        config_dir,
        {
            "auths": {
                HUB_KEY: {"auth": basic("a", "b")},
                "https://127.0.0.1:5000": {"auth": basic("c", "d")},
                "keep:1": {"auth": basic("e", "f")},
            },
            "credHelpers": {},
        },
    )
    removed = run(daemon, "logout", "https://127.0.0.1:5000/v2/")
    assert (removed.status, removed.out, removed.stderr) == (
        0,
        "Removing login credentials for 127.0.0.1:5000\n",
        "",
    )
    assert set(read_config(config_dir)["auths"]) == {HUB_KEY, "keep:1"}
    hub = run(daemon, "logout", "docker.io")
    assert hub.out == f"Removing login credentials for {HUB_KEY}\n"
    assert read_config(config_dir) == {
        "auths": {"keep:1": {"auth": basic("e", "f")}},
        "credHelpers": {},
    }
    again = run(daemon, "logout")  # as docker 28: nothing to remove is no error
    assert (again.status, again.out) == (0, f"Removing login credentials for {HUB_KEY}\n")
    assert daemon.calls() == []


# -- credential helpers -----------------------------------------------------------------

HELPER = """#!/bin/sh
# a docker credential helper keeping one file per server in $HELPER_DIR
store="$HELPER_DIR"; read -r input || true
key=$(printf %s "$input" | sed 's/.*"ServerURL": *"\\([^"]*\\)".*/\\1/' | tr '/:' '__')
case "$1" in
store) printf %s "$input" > "$store/$key" ;;
get) key=$(printf %s "$input" | tr '/:' '__')
     if [ -f "$store/$key" ]; then cat "$store/$key"
     else echo "credentials not found in native keychain"; exit 1; fi ;;
erase) rm -f "$store/$(printf %s "$input" | tr '/:' '__')" ;;
esac
"""


def test_a_credential_helper_keeps_the_secrets(
    daemon: FakeDaemon, config_dir: Path, tmp_path: Path
) -> None:
    bin_dir, secrets = tmp_path / "bin", tmp_path / "secrets"
    bin_dir.mkdir()
    secrets.mkdir()
    helper = bin_dir / "docker-credential-test"
    helper.write_text(HELPER)
    helper.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HELPER_DIR": str(secrets)}
    write_config(config_dir, {"credsStore": "test", "auths": {}})
    daemon.reply("POST", "/auth", SUCCEEDED)
    login = run(
        daemon, "login", "-u", "me", "--password-stdin", "127.0.0.1:5000", stdin=b"pw", env=env
    )
    assert (login.status, login.stderr) == (0, "")
    assert read_config(config_dir) == {"credsStore": "test", "auths": {"127.0.0.1:5000": {}}}
    assert json.loads((secrets / "127.0.0.1_5000").read_text()) == {
        "ServerURL": "127.0.0.1:5000",
        "Username": "me",
        "Secret": "pw",
    }
    daemon.reply("POST", "/images/create", lines(*PULL_STREAM))
    assert run(daemon, "pull", "-q", "127.0.0.1:5000/x", env=env).status == 0
    assert auth_header(daemon.requests[-1]) == {
        "username": "me",
        "password": "pw",
        "serveraddress": "127.0.0.1:5000",
    }
    logout = run(daemon, "logout", "127.0.0.1:5000", env=env)
    assert (logout.status, logout.stderr) == (0, "")
    assert not (secrets / "127.0.0.1_5000").exists()
    assert read_config(config_dir)["auths"] == {}


def test_a_missing_credential_helper(daemon: FakeDaemon, config_dir: Path) -> None:
    write_config(config_dir, {"credsStore": "absent"})
    daemon.reply("POST", "/auth", SUCCEEDED)
    login = run(daemon, "login", "-u", "me", "-p", "pw", "127.0.0.1:5000")
    assert login.status == 1
    assert login.stderr.endswith(
        "Error saving credentials: error storing credentials - err: "
        'exec: "docker-credential-absent": executable file not found in $PATH, out: ``\n'
    )
    daemon.reply("POST", "/images/create", lines(*PULL_STREAM))
    pull = run(daemon, "pull", "-q", "127.0.0.1:5000/x")  # as docker: no credentials
    assert (pull.status, daemon.requests[-1].headers["X-Registry-Auth"]) == (0, "e30=")
    logout = run(daemon, "logout", "127.0.0.1:5000")
    assert logout.status == 0
    assert "WARNING: could not erase credentials:\n127.0.0.1:5000: error erasing" in logout.stderr


def test_a_config_file_that_is_not_json_is_reported_and_kept(
    daemon: FakeDaemon, config_dir: Path
) -> None:
    config_dir.mkdir()
    (config_dir / "config.json").write_text("{not json")
    daemon.reply("POST", "/images/create", lines(*PULL_STREAM))
    pull = run(daemon, "pull", "-q", "busybox")
    assert pull.status == 0
    assert pull.stderr.startswith(
        f"WARNING: Error loading config file: {config_dir / 'config.json'}"
    )
    daemon.reply("POST", "/auth", SUCCEEDED)
    login = run(daemon, "login", "-u", "me", "-p", "pw")
    assert login.status == 1
    assert "refusing to overwrite" in login.stderr
    assert (config_dir / "config.json").read_text() == "{not json"
    assert ConfigFile.load(config_dir / "config.json").data == {}


def test_login_offers_the_stored_user_name(daemon: FakeDaemon, config_dir: Path) -> None:
    write_config(config_dir, {"auths": {"127.0.0.1:5000": {"auth": basic("keep", "")}}})
    daemon.reply("POST", "/auth", SUCCEEDED)
    command = [sys.executable, "-m", "pydocker", "-H", daemon.host, "login", "127.0.0.1:5000"]
    term = Terminal(command, env={"DOCKER_CONFIG": str(config_dir)})
    term.expect("Username (keep): ")
    term.send("\n")  # the stored one
    term.expect("Password: ")
    term.send("\n")
    assert term.wait() == 1
    assert term.output.decode().endswith("error: password is required\r\n")
    assert daemon.calls() == []


def test_a_helper_that_answers_nonsense(
    daemon: FakeDaemon, config_dir: Path, tmp_path: Path
) -> None:
    helper = tmp_path / "docker-credential-odd"
    helper.write_text("#!/bin/sh\necho not-json\n")
    helper.chmod(0o755)
    write_config(config_dir, {"credsStore": "odd"})
    daemon.reply("POST", "/images/create", lines(*PULL_STREAM))
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    pull = run(daemon, "pull", "-q", "127.0.0.1:5000/x", env=env)
    assert (pull.status, pull.stderr) == (0, "")
    assert daemon.requests[-1].headers["X-Registry-Auth"] == "e30="
