from __future__ import annotations

import pytest
from pydocker.errors import InvalidArgument, TemplateError
from pydocker.formatting import Template, event_line, go_indent, human_size, table
from pydocker.options import FlagError, parse_filters, parse_time


def render_template(text: str, value: object) -> str:
    return Template.parse(text).render(value)


def test_template_fields_and_json() -> None:
    value = {"Server": {"ApiVersion": "1.47", "Ok": True}, "List": [1]}
    assert render_template("{{.Server.ApiVersion}}", value) == "1.47"
    assert render_template("{{ .Server.Ok }}\\t{{json .List}}", value) == "true\t[1]"
    assert render_template("{{json .}}", {"a": 1}) == '{"a":1}'  # compact, as Go writes it
    assert render_template("{{.Missing.Field}}", value) == "<no value>"


def test_table_pads_columns_like_tabwriter() -> None:
    out = table(["KIND", "NAME"], [["storage", "overlay"], ["network", "host"]])
    assert out.splitlines() == ["KIND      NAME", "storage   overlay", "network   host"]


@pytest.mark.parametrize(
    ("size", "text"), [(512, "512B"), (2048, "2KiB"), (25_271_234_560, "23.54GiB")]
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


def test_event_line_as_docker_prints_it() -> None:
    event = {
        "Type": "daemon",
        "Action": "reload",
        "timeNano": 1_700_000_000_123_456_789,
        "Actor": {"ID": "abc", "Attributes": {"name": "vm", "b": "2"}},
    }
    assert event_line(event) == ("2023-11-14T22:13:20.123456789Z daemon reload abc (b=2, name=vm)")


def test_filter_flags_become_the_map_form() -> None:
    assert parse_filters(("type=daemon", "type=container", "label=a=b")) == {
        "type": {"daemon": True, "container": True},
        "label": {"a=b": True},
    }
    with pytest.raises(FlagError, match='invalid argument "bad" for "-f, --filter" flag'):
        parse_filters(("bad",))


def test_times_unix_rfc3339_and_durations() -> None:
    assert parse_time("1700000000") == "1700000000"
    assert parse_time("10m", now=1000.0) == "400.000000000"
    assert parse_time("1h30m", now=10000.0) == "4600.000000000"
    assert parse_time("2023-11-14T22:13:20Z") == "1700000000.000000000"
    with pytest.raises(InvalidArgument, match="failed to parse value as time or duration"):
        parse_time("yesterday")


def test_go_indent_keeps_the_daemons_text_as_json_indent_does() -> None:
    raw = '{"a": "w\\u00e9b <&>", "b":[], "c" : {}, "d":[1,{"e":"x,:{}\\"]"}], "f":1e-07}\n'
    assert go_indent(f"[{raw},{{}}]") == (
        "[\n"
        "    {\n"
        '        "a": "w\\u00e9b <&>",\n'
        '        "b": [],\n'
        '        "c": {},\n'
        '        "d": [\n'
        "            1,\n"
        "            {\n"
        '                "e": "x,:{}\\"]"\n'
        "            }\n"
        "        ],\n"
        '        "f": 1e-07\n'
        "    },\n"
        "    {}\n"
        "]"
    )
    assert go_indent("[]") == "[]"


def test_range_over_lists_and_map_values() -> None:
    value = {
        "IPAM": {"Config": [{"Subnet": "10.1.0.0/24"}, {"Subnet": "fd00::/64"}]},
        "Networks": {"b": {"IPAddress": "10.2.0.2"}, "a": {"IPAddress": "10.1.0.2"}},
        "None": None,
    }
    assert render_template("{{range .IPAM.Config}}{{.Subnet}} {{end}}", value) == (
        "10.1.0.0/24 fd00::/64 "
    )
    assert render_template("{{range .Networks}}{{.IPAddress}},{{end}}|", value) == (
        "10.1.0.2,10.2.0.2,|"  # a map's values in the order of its keys, as Go ranges
    )
    assert render_template("x{{range .None}}y{{end}}z", value) == "xz"
    nested = "{{range .IPAM.Config}}[{{range .X}}{{.}}{{end}}{{- .Subnet -}}]{{end}}"
    assert render_template(nested, value) == "[10.1.0.0/24][fd00::/64]"
    with pytest.raises(TemplateError, match=r"template: :1: unexpected EOF"):
        Template.parse("{{range .A}}x")
    with pytest.raises(TemplateError, match=r"template: :1: unexpected \{\{end\}\}"):
        Template.parse("x{{end}}")
