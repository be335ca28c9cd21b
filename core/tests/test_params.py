"""Query parameters as moby parses them: booleans, filters, timestamps."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from pydockerd.api.params import parse_bool, parse_filters, parse_timestamp_ns
from pydockerd.errors import InvalidParameter

KEYS = ("status", "label", "name")


@pytest.mark.parametrize(
    "raw",
    # moby's false set (any case), docker-py's Python-style False, and absent
    ["", "0", "no", "NO", "false", "False", "FALSE", "none", "None", " false ", None],
)
def test_false_values(raw: str | None) -> None:
    assert parse_bool(raw) is False


@pytest.mark.parametrize("raw", ["1", "true", "True", "yes", "on", "2", "anything", "-1"])
def test_true_values(raw: str) -> None:
    assert parse_bool(raw) is True


@pytest.mark.parametrize("raw", [None, ""])
def test_no_filters(raw: str | None) -> None:
    assert parse_filters(raw, KEYS) == {}


def test_filters_in_map_form_as_the_cli_sends_them() -> None:
    raw = '{"status":{"running":true,"exited":true,"dead":false},"label":{"a=b":true}}'
    assert parse_filters(raw, KEYS) == {"status": {"running", "exited"}, "label": {"a=b"}}


def test_filters_in_list_form_as_docker_py_sends_them() -> None:
    raw = '{"status":["running","exited"],"name":["web"]}'
    assert parse_filters(raw, KEYS) == {"status": {"running", "exited"}, "name": {"web"}}


def test_both_forms_give_the_same_filters() -> None:
    assert parse_filters('{"label":{"x":true}}', KEYS) == parse_filters('{"label":["x"]}', KEYS)


def test_unknown_filter_key_uses_mobys_message() -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_filters('{"status":["running"],"x":["1"]}', KEYS)
    assert str(caught.value) == "invalid filter 'x'"


@pytest.mark.parametrize("raw", ["{not json", '{"status":', "nul"])
def test_bad_json_is_invalid_parameter(raw: str) -> None:
    with pytest.raises(InvalidParameter, match=r"^invalid filter: "):
        parse_filters(raw, KEYS)


@pytest.mark.parametrize("raw", ['["status"]', '"status"', "3"])
def test_filters_must_be_an_object(raw: str) -> None:
    with pytest.raises(InvalidParameter, match="expected a JSON object"):
        parse_filters(raw, KEYS)


def test_filter_value_of_the_wrong_shape() -> None:
    with pytest.raises(InvalidParameter, match="invalid filter 'status': expected a list"):
        parse_filters('{"status":"running"}', KEYS)


@pytest.mark.parametrize(
    ("raw", "nanos"),
    [
        ("1700000000", 1_700_000_000_000_000_000),
        ("0", 0),
        ("1700000000.5", 1_700_000_000_500_000_000),
        ("1700000000.000000001", 1_700_000_000_000_000_001),
        ("1700000000.1234567891", 1_700_000_000_123_456_789),  # beyond nanoseconds: cut
        ("-1.5", -1_500_000_000),
        ("-0.5", -500_000_000),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000_000_000_000),
        ("2023-11-14T22:13:20.25Z", 1_700_000_000_250_000_000),
    ],
)
def test_timestamps(raw: str, nanos: int) -> None:
    assert parse_timestamp_ns(raw, "since") == nanos


def test_rfc3339_agrees_with_unix_seconds() -> None:
    moment = datetime(2024, 2, 29, 12, 0, 1, tzinfo=UTC)
    assert parse_timestamp_ns(moment.isoformat(), "until") == parse_timestamp_ns(
        str(int(moment.timestamp())), "until"
    )


@pytest.mark.parametrize("raw", [None, ""])
def test_absent_timestamp(raw: str | None) -> None:
    assert parse_timestamp_ns(raw, "since") is None


@pytest.mark.parametrize("raw", ["soon", "12abc", "1.2.3", "1.x", "--1", "2023-13-45T00:00:00Z"])
def test_garbage_timestamp_names_the_parameter(raw: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_timestamp_ns(raw, "until")
    assert str(caught.value) == f"invalid value for until: {raw!r}"


def test_a_go_duration_is_that_long_ago() -> None:
    before = time.time_ns()
    value = parse_timestamp_ns("1h30m", "until")
    assert value is not None
    assert before - 5_400_000_000_000 <= value <= time.time_ns() - 5_400_000_000_000


def test_rfc3339_without_a_zone_is_local_time() -> None:
    raw = "2023-11-14T22:13:20.5"
    expected = int(datetime.fromisoformat(raw).timestamp()) * 1_000_000_000 + 500_000_000
    assert parse_timestamp_ns(raw, "since") == expected
