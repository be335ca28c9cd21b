"""The docs stay true: every hook documented with its exact signature and tested, every
route in the API support table."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from pydockerd import hookspecs
from pydockerd.api import plugins, system

REPO = Path(__file__).resolve().parent.parent
HOOKS_DOC = REPO / "docs" / "plugin_hooks.md"
API_DOC = REPO / "docs" / "api-support.md"
TEST_DIRS = [REPO / "tests", REPO / "core" / "tests"]


def _hookspecs() -> dict[str, str]:
    """Hook name → ``def name(params) -> return`` as written in hookspecs.py."""
    specs = {}
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("pydockerd_"):
            signature = inspect.signature(function)
            params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
            specs[name] = f"def {name}({params}) -> {signature.return_annotation}"
    return specs


def _documented() -> dict[str, str]:
    """Hook name → the first code block of its ``## name`` section in plugin_hooks.md."""
    sections = re.split(r"^## ", HOOKS_DOC.read_text(), flags=re.MULTILINE)[1:]
    documented = {}
    for section in sections:
        title, _, body = section.partition("\n")
        block = re.search(r"```python\n(.*?)```", body, re.DOTALL)
        documented[title.strip()] = block.group(1) if block else ""
    return documented


def _normalise(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    specs, documented = _hookspecs(), _documented()
    assert specs, "no hookspecs found"
    assert set(documented) == set(specs), "plugin_hooks.md and hookspecs.py list other hooks"
    for name, signature in specs.items():
        assert _normalise(documented[name]) == _normalise(signature), name


def test_every_hook_has_a_test() -> None:
    defined = {
        match
        for folder in TEST_DIRS
        for path in folder.rglob("test_*.py")
        for match in re.findall(
            r"^(?:async )?def (test_hook_\w+)\(", path.read_text(), re.MULTILINE
        )
    }
    missing = [name for name in _hookspecs() if f"test_hook_{name}" not in defined]
    assert missing == []


def test_every_route_is_in_the_api_support_table() -> None:
    table = API_DOC.read_text()
    rows = {
        (method, path): status
        for method, path, status in re.findall(
            r"^\| `(GET|HEAD|POST|PUT|DELETE)` \| `([^`]+)` \| (supported|partial|not yet) \|",
            table,
            re.MULTILINE,
        )
    }
    for module in (system, plugins):
        for method, path, _handler in module.ROUTES:
            doc_path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)
            assert rows.get((method, doc_path)) in ("supported", "partial"), (method, doc_path)
