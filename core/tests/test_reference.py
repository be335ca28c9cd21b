"""Image references (images/reference.py): Docker's normalisation, familiar forms, errors."""

from __future__ import annotations

import time

import pytest
from pydockerd.errors import InvalidParameter
from pydockerd.images.reference import (
    DEFAULT_DOMAIN,
    DEFAULT_TAG,
    Reference,
    looks_like_id,
    parse_reference,
    parse_repository_tag,
)

HEX = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"
DIGEST = f"sha256:{HEX}"
DIGEST512 = "sha512:" + "ab" * 64
DIGEST384 = "sha384:" + "cd" * 48


def error_of(text: str) -> str:
    with pytest.raises(InvalidParameter) as caught:
        parse_reference(text)
    return str(caught.value)


# input -> (domain, path, tag, digest, str(), familiar(), familiar_name)
VALID = [
    (
        "busybox",
        ("docker.io", "library/busybox", "latest", None),
        "docker.io/library/busybox:latest",
        "busybox:latest",
        "busybox",
    ),
    (
        "busybox:1.36",
        ("docker.io", "library/busybox", "1.36", None),
        "docker.io/library/busybox:1.36",
        "busybox:1.36",
        "busybox",
    ),
    (
        "library/busybox",
        ("docker.io", "library/busybox", "latest", None),
        "docker.io/library/busybox:latest",
        "busybox:latest",
        "busybox",
    ),
    (
        "docker.io/busybox",
        ("docker.io", "library/busybox", "latest", None),
        "docker.io/library/busybox:latest",
        "busybox:latest",
        "busybox",
    ),
    (
        "docker.io/library/busybox:musl",
        ("docker.io", "library/busybox", "musl", None),
        "docker.io/library/busybox:musl",
        "busybox:musl",
        "busybox",
    ),
    (
        "index.docker.io/library/busybox",
        ("docker.io", "library/busybox", "latest", None),
        "docker.io/library/busybox:latest",
        "busybox:latest",
        "busybox",
    ),
    (
        "index.docker.io/busybox",
        ("docker.io", "library/busybox", "latest", None),
        "docker.io/library/busybox:latest",
        "busybox:latest",
        "busybox",
    ),
    (
        "user/app",
        ("docker.io", "user/app", "latest", None),
        "docker.io/user/app:latest",
        "user/app:latest",
        "user/app",
    ),
    (
        "docker.io/user/app:v2",
        ("docker.io", "user/app", "v2", None),
        "docker.io/user/app:v2",
        "user/app:v2",
        "user/app",
    ),
    (
        "a/b/c",
        ("docker.io", "a/b/c", "latest", None),
        "docker.io/a/b/c:latest",
        "a/b/c:latest",
        "a/b/c",
    ),
    (
        "docker.io/library/sub/x",
        ("docker.io", "library/sub/x", "latest", None),
        "docker.io/library/sub/x:latest",
        "library/sub/x:latest",
        "library/sub/x",
    ),
    (
        "localhost/x",
        ("localhost", "x", "latest", None),
        "localhost/x:latest",
        "localhost/x:latest",
        "localhost/x",
    ),
    (
        "localhost:5000/x",
        ("localhost:5000", "x", "latest", None),
        "localhost:5000/x:latest",
        "localhost:5000/x:latest",
        "localhost:5000/x",
    ),
    (
        "localhost:5000/x:v1",
        ("localhost:5000", "x", "v1", None),
        "localhost:5000/x:v1",
        "localhost:5000/x:v1",
        "localhost:5000/x",
    ),
    (
        "registry.example.com/team/app:1.0",
        ("registry.example.com", "team/app", "1.0", None),
        "registry.example.com/team/app:1.0",
        "registry.example.com/team/app:1.0",
        "registry.example.com/team/app",
    ),
    (
        "registry.example.com/app",
        ("registry.example.com", "app", "latest", None),
        "registry.example.com/app:latest",
        "registry.example.com/app:latest",
        "registry.example.com/app",
    ),
    (
        "example:5000/app",
        ("example:5000", "app", "latest", None),
        "example:5000/app:latest",
        "example:5000/app:latest",
        "example:5000/app",
    ),
    (
        "127.0.0.1:5000/app",
        ("127.0.0.1:5000", "app", "latest", None),
        "127.0.0.1:5000/app:latest",
        "127.0.0.1:5000/app:latest",
        "127.0.0.1:5000/app",
    ),
    (
        "[::1]:5000/x",
        ("[::1]:5000", "x", "latest", None),
        "[::1]:5000/x:latest",
        "[::1]:5000/x:latest",
        "[::1]:5000/x",
    ),
    (
        "[2001:db8::1]/x:v1",
        ("[2001:db8::1]", "x", "v1", None),
        "[2001:db8::1]/x:v1",
        "[2001:db8::1]/x:v1",
        "[2001:db8::1]/x",
    ),
    (
        "Registry.Example.COM/app",
        ("Registry.Example.COM", "app", "latest", None),
        "Registry.Example.COM/app:latest",
        "Registry.Example.COM/app:latest",
        "Registry.Example.COM/app",
    ),
    (
        "Foo/bar",
        ("Foo", "bar", "latest", None),
        "Foo/bar:latest",
        "Foo/bar:latest",
        "Foo/bar",
    ),
    (
        f"busybox@{DIGEST}",
        ("docker.io", "library/busybox", None, DIGEST),
        f"docker.io/library/busybox@{DIGEST}",
        f"busybox@{DIGEST}",
        "busybox",
    ),
    (
        f"busybox:1.36@{DIGEST}",
        ("docker.io", "library/busybox", "1.36", DIGEST),
        f"docker.io/library/busybox:1.36@{DIGEST}",
        f"busybox:1.36@{DIGEST}",
        "busybox",
    ),
    (
        f"localhost:5000/x@{DIGEST512}",
        ("localhost:5000", "x", None, DIGEST512),
        f"localhost:5000/x@{DIGEST512}",
        f"localhost:5000/x@{DIGEST512}",
        "localhost:5000/x",
    ),
    (
        f"quay.io/a/b:t@{DIGEST384}",
        ("quay.io", "a/b", "t", DIGEST384),
        f"quay.io/a/b:t@{DIGEST384}",
        f"quay.io/a/b:t@{DIGEST384}",
        "quay.io/a/b",
    ),
    (
        "a-b--c_d__e/f.g:Tag_1.x-Y",
        ("docker.io", "a-b--c_d__e/f.g", "Tag_1.x-Y", None),
        "docker.io/a-b--c_d__e/f.g:Tag_1.x-Y",
        "a-b--c_d__e/f.g:Tag_1.x-Y",
        "a-b--c_d__e/f.g",
    ),
    (
        "localhost:5000",
        ("docker.io", "library/localhost", "5000", None),
        "docker.io/library/localhost:5000",
        "localhost:5000",
        "localhost",
    ),
    (
        "localhost",
        ("docker.io", "library/localhost", "latest", None),
        "docker.io/library/localhost:latest",
        "localhost:latest",
        "localhost",
    ),
    (
        HEX[:12],
        ("docker.io", f"library/{HEX[:12]}", "latest", None),
        f"docker.io/library/{HEX[:12]}:latest",
        f"{HEX[:12]}:latest",
        HEX[:12],
    ),
    (
        f"{HEX}:v1",
        ("docker.io", f"library/{HEX}", "v1", None),
        f"docker.io/library/{HEX}:v1",
        f"{HEX}:v1",
        HEX,
    ),
    (
        "busybox:" + "t" * 128,
        ("docker.io", "library/busybox", "t" * 128, None),
        "docker.io/library/busybox:" + "t" * 128,
        "busybox:" + "t" * 128,
        "busybox",
    ),
]


@pytest.mark.parametrize(
    ("text", "fields", "full", "familiar", "familiar_name"),
    VALID,
    ids=[row[0][:40] for row in VALID],
)
def test_valid_references(
    text: str,
    fields: tuple[str, str, str | None, str | None],
    full: str,
    familiar: str,
    familiar_name: str,
) -> None:
    ref = parse_reference(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == fields
    assert str(ref) == full
    assert ref.familiar() == familiar
    assert ref.familiar_name == familiar_name
    assert ref.name == f"{fields[0]}/{fields[1]}"


@pytest.mark.parametrize("row", VALID, ids=[row[0][:40] for row in VALID])
def test_round_trips(
    row: tuple[str, tuple[str, str, str | None, str | None], str, str, str],
) -> None:
    ref = parse_reference(row[0])
    assert parse_reference(str(ref)) == ref
    assert parse_reference(ref.familiar()) == ref
    assert str(parse_reference(ref.familiar())) == str(ref)


def test_name_property() -> None:
    assert parse_reference("busybox").name == "docker.io/library/busybox"
    assert parse_reference("localhost:5000/a/b:v").name == "localhost:5000/a/b"
    assert Reference("", "x", None, None).name == "x"


def test_first_component_that_is_not_a_valid_domain_becomes_part_of_the_path() -> None:
    # As distribution/reference: "a_b.c" has a "." so it is split off as a registry, but it
    # is not a valid domain, so the whole name matches as a domain-less path.
    ref = parse_reference("a_b.c/d:v1")
    assert (ref.domain, ref.path, ref.tag) == ("", "a_b.c/d", "v1")
    assert ref.name == "a_b.c/d"
    assert str(ref) == ref.familiar() == "a_b.c/d:v1"
    assert parse_reference(str(ref)) == ref


def test_default_tag_false_leaves_tag_absent() -> None:
    ref = parse_reference("busybox", default_tag=False)
    assert ref.tag is None
    assert ref.digest is None
    assert str(ref) == "docker.io/library/busybox"
    assert ref.familiar() == "busybox"
    assert parse_reference("busybox:v1", default_tag=False).tag == "v1"


def test_digest_only_has_no_tag_even_with_default_tag() -> None:
    assert parse_reference(f"busybox@{DIGEST}").tag is None
    assert parse_reference(f"busybox@{DIGEST}", default_tag=False).tag is None


def test_reference_is_frozen_and_hashable() -> None:
    ref = parse_reference("busybox")
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]
    assert {ref, parse_reference("docker.io/library/busybox:latest")} == {ref}
    assert ref != parse_reference("busybox:1")


# --- errors ---------------------------------------------------------------------------

INVALID_FORMAT = "invalid reference format"


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":",
        "/",
        "busybox:",
        "busybox@",
        ":latest",
        "@" + DIGEST,
        "-busybox",
        "busybox-",
        "a//b",
        "a/b/",
        "/a",
        "bu sybox",
        "busybox:a:b",
        "busybox:-tag",
        "busybox:.tag",
        "busybox:t/x",
        "busybox:" + "t" * 129,
        "a..b/c",
        "a___b",
        "a.-b",
        "[::1/x",
        "[::g]/x",
        "-a.com/x",
        "a.com-/x",
        "localhost:port/x",
        "busybox\n",
        "busybox:latest\n",
        "b\u00fcsybox",
        "busybox:t\u00e4g",
        "busybox@sha256:abc",
        "busybox@sha256:" + "z" * 64,
        "busybox@" + HEX,
        "busybox@1sha256:" + HEX,
        "busybox@sha256" + HEX,
    ],
)
def test_invalid_reference_format(text: str) -> None:
    assert error_of(text) == INVALID_FORMAT


@pytest.mark.parametrize(
    ("text", "remote"),
    [
        ("Busybox", "library/Busybox"),
        ("library/Busybox", "library/Busybox"),
        ("docker.io/Busybox:latest", "library/Busybox"),
        ("user/App", "user/App"),
        ("localhost:5000/X", "X"),
        ("Registry.Example.com/Team/app:v1", "Team/app"),
        ("[::1]:5000/a/B", "a/B"),
        (f"busybox@SHA256:{HEX}", "library/busybox@SHA256"),
    ],
)
def test_uppercase_path_is_refused(text: str, remote: str) -> None:
    assert error_of(text) == (
        f"invalid reference format: repository name ({remote}) must be lowercase"
    )


def test_64_hex_alone_is_refused() -> None:
    assert error_of(HEX) == (
        f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"
    )


def test_name_length_limit() -> None:
    longest = "a" * 247  # "library/" + 247 = 255
    assert parse_reference(longest).path == "library/" + longest
    assert error_of(longest + "a") == "repository name must not be more than 255 characters"
    assert error_of("user/" + "b" * 251) == "repository name must not be more than 255 characters"
    # the domain does not count
    ok = parse_reference("registry.example.com/" + "c" * 255)
    assert len(ok.path) == 255


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
        ("busybox@sha1:" + "a" * 40, "unsupported digest algorithm"),
        ("busybox@sha256+b64:" + "a" * 64, "unsupported digest algorithm"),
        ("busybox:v@Sha1:" + "a" * 40, "invalid checksum digest format"),
        ("busybox@sha256:" + "a" * 63, "invalid checksum digest length"),
        ("busybox@sha256:" + "a" * 65, "invalid checksum digest length"),
        ("busybox@sha256:" + "a" * 32, "invalid checksum digest length"),
        ("busybox@sha512:" + "a" * 64, "invalid checksum digest length"),
        ("busybox@sha256:" + HEX.upper(), "invalid checksum digest format"),
        ("busybox:v1@sha384:" + "A" * 96, "invalid checksum digest format"),
    ],
)
def test_bad_digest(text: str, message: str) -> None:
    assert error_of(text) == message


def test_errors_are_invalid_parameter_with_status_400() -> None:
    from pydockerd.errors import status_for

    with pytest.raises(InvalidParameter) as caught:
        parse_reference("Busybox")
    assert status_for(caught.value) == 400


def test_pathological_input_is_fast() -> None:
    started = time.monotonic()
    for text in ("a" * 100_000 + "!", "a." * 50_000 + "/", "a-" * 50_000, "a/" * 50_000):
        with pytest.raises(InvalidParameter):
            parse_reference(text)
    assert time.monotonic() - started < 2


# --- with_tag -------------------------------------------------------------------------


def test_with_tag_replaces_tag_and_drops_digest() -> None:
    ref = parse_reference(f"localhost:5000/x:v1@{DIGEST}")
    tagged = ref.with_tag("v2")
    assert tagged == Reference("localhost:5000", "x", "v2", None)
    assert str(tagged) == "localhost:5000/x:v2"
    assert ref.tag == "v1"  # the original is unchanged


def test_with_tag_on_digest_only_reference() -> None:
    tagged = parse_reference(f"busybox@{DIGEST}").with_tag("latest")
    assert tagged.familiar() == "busybox:latest"
    assert tagged.digest is None


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a/b", "a:b", "a@b", "t" * 129, "\u00e9"])
def test_with_tag_refuses_bad_tags(tag: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_reference("busybox").with_tag(tag)
    assert str(caught.value) == "invalid tag format"


@pytest.mark.parametrize("tag", ["x", "_x", "X", "1.0-rc_1", "t" * 128])
def test_with_tag_accepts_good_tags(tag: str) -> None:
    assert parse_reference("busybox").with_tag(tag).tag == tag


# --- parse_repository_tag ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("repo", "tag", "expected"),
    [
        ("x", None, "docker.io/library/x:latest"),
        ("x", "", "docker.io/library/x:latest"),
        ("x", "v2", "docker.io/library/x:v2"),
        ("x:v1", None, "docker.io/library/x:v1"),
        ("x:v1", "", "docker.io/library/x:v1"),
        ("x:v1", "v2", "docker.io/library/x:v2"),
        ("user/app", "1.0", "docker.io/user/app:1.0"),
        ("localhost:5000/x", None, "localhost:5000/x:latest"),
        ("localhost:5000/x", "v3", "localhost:5000/x:v3"),
        ("[::1]:5000/x:a", "b", "[::1]:5000/x:b"),
    ],
)
def test_parse_repository_tag(repo: str, tag: str | None, expected: str) -> None:
    ref = parse_repository_tag(repo, tag)
    assert str(ref) == expected
    assert ref.digest is None


@pytest.mark.parametrize("repo", [f"x@{DIGEST}", f"x:v1@{DIGEST}", f"localhost/x@{DIGEST512}"])
@pytest.mark.parametrize("tag", [None, "v1"])
def test_parse_repository_tag_refuses_digest(repo: str, tag: str | None) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_repository_tag(repo, tag)
    assert str(caught.value) == "refusing to create a tag with a digest reference"


@pytest.mark.parametrize("tag", ["-bad", "a/b", "t" * 129])
def test_parse_repository_tag_refuses_bad_tag(tag: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_repository_tag("x", tag)
    assert str(caught.value) == "invalid tag format"


@pytest.mark.parametrize(
    ("repo", "message"),
    [
        ("", INVALID_FORMAT),
        ("X", "invalid reference format: repository name (library/X) must be lowercase"),
        (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
        ("x:-v", INVALID_FORMAT),
    ],
)
def test_parse_repository_tag_refuses_bad_repo(repo: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_repository_tag(repo, "v1")
    assert str(caught.value) == message


# --- looks_like_id --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", [HEX, HEX[:12], "a", "0123456789abcdef", DIGEST, "sha256:" + HEX[:12], "sha256:a"]
)
def test_looks_like_id(text: str) -> None:
    assert looks_like_id(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256:",
        HEX + "0",
        "sha256:" + HEX + "0",
        HEX.upper(),
        "busybox",
        "abcg",
        "sha512:" + HEX,
        "sha256:" + HEX.upper(),
        "abc\n",
        "ab:cd",
    ],
)
def test_not_looks_like_id(text: str) -> None:
    assert not looks_like_id(text)


def test_constants() -> None:
    assert DEFAULT_DOMAIN == "docker.io"
    assert DEFAULT_TAG == "latest"
