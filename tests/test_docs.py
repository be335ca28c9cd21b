"""The docs stay true: every hook documented with its exact signature and tested, every
served route in the API support table, every setting and flag in the operator guide, and the
plugin author guide's example package installs and passes its own tests."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pydockerd.api
import pytest
from pydockerd import hookspecs
from pydockerd.cli import main as pydockerd_command
from pydockerd.settings import DaemonSettings, NetworkSettings, TLSSettings

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
HOOKS_DOC = DOCS / "plugin_hooks.md"
API_DOC = DOCS / "api-support.md"
OPERATOR_GUIDE = DOCS / "operator-guide.md"
AUTHOR_GUIDE = DOCS / "plugin-author-guide.md"
API_SPEC = REPO.parent / "shared" / "specs" / "docker-engine-api.yaml"
TEST_DIRS = [REPO / "tests", REPO / "core" / "tests"]

CODE_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
HOOK_KINDS = ("registration", "event", "decision")


def _sections(text: str) -> dict[str, str]:
    """``## heading`` → the text under it, up to the next ``## `` heading."""
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    sections: dict[str, str] = {}
    for part in parts:
        title, _, body = part.partition("\n")
        assert title.strip() not in sections, f"two sections called {title.strip()!r}"
        sections[title.strip()] = body
    return sections


# --------------------------------------------------------------------------------------
# plugin_hooks.md: every hook, with its exact signature


def _hookspecs() -> dict[str, Callable[..., object]]:
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("pydockerd_")
    }


def _rendered_signature(name: str, function: Callable[..., object]) -> str:
    """``def name(params) -> return`` from the function itself; hookspecs.py uses
    ``from __future__ import annotations``, so every annotation is the source's string."""
    signature = inspect.signature(function)
    params = []
    for param in signature.parameters.values():
        assert isinstance(param.annotation, str), f"{name}({param.name}) has no annotation"
        params.append(f"{param.name}: {param.annotation}")
    assert isinstance(signature.return_annotation, str), f"{name} has no return annotation"
    return f"def {name}({', '.join(params)}) -> {signature.return_annotation}"


def _normalise(signature: str) -> str:
    """Whitespace removed; a trailing comma after the last parameter and a final ``:`` too
    (a signature split over lines, as ruff formats a long one, has both)."""
    text = re.sub(r"\s+", "", signature)
    return re.sub(r",\)", ")", text).removesuffix(":")


def _documented_hooks() -> dict[str, str]:
    """Hook name → its section of plugin_hooks.md, for every ``## pydockerd_*`` section."""
    return {
        title: body
        for title, body in _sections(HOOKS_DOC.read_text()).items()
        if title.startswith("pydockerd_")
    }


def test_hookspecs_are_found() -> None:
    assert len(_hookspecs()) >= 8


def test_every_hook_is_documented_and_no_other() -> None:
    assert set(_documented_hooks()) == set(_hookspecs())


@pytest.mark.parametrize("name", sorted(_hookspecs()))
def test_hooks_doc_shows_the_exact_signature(name: str) -> None:
    section = _documented_hooks().get(name)
    assert section is not None, f"plugin_hooks.md has no section '## {name}'"
    blocks = [code for lang, code in CODE_BLOCK.findall(section) if lang == "python"]
    assert blocks, f"## {name} has no python code block"
    expected = _rendered_signature(name, _hookspecs()[name])
    assert _normalise(blocks[0]) == _normalise(expected), f"\n{blocks[0]}\n!=\n{expected}"


@pytest.mark.parametrize("name", sorted(_hookspecs()))
def test_hooks_doc_states_kind_and_has_an_example(name: str) -> None:
    """The kind matches the hookspec's docstring ("Registration: ..."); an example follows."""
    docstring = inspect.getdoc(_hookspecs()[name]) or ""
    kind = docstring.split(":", 1)[0].strip().lower()
    assert kind in HOOK_KINDS, f"{name}'s docstring does not start with its kind"
    section = _documented_hooks().get(name, "")
    assert re.search(rf"\*\*Kind:\*\* {kind}\b", section), f"## {name} does not say {kind}"
    for label in ("Called", "Returns"):
        assert f"**{label}:**" in section, f"## {name} does not say what it {label.lower()}"
    examples = [code for lang, code in CODE_BLOCK.findall(section) if lang == "python"][1:]
    assert any(f"def {name}(" in code for code in examples), f"## {name} has no example"
    for code in examples:
        ast.parse(code)


def test_signature_check_is_not_vacuous() -> None:
    """The comparison above notices a changed annotation or parameter name."""
    name = "pydockerd_register_storage_drivers"
    expected = _rendered_signature(name, _hookspecs()[name])
    assert _normalise(expected.replace("registry", "registy", 1)) != _normalise(expected)
    assert _normalise(expected.replace("-> None", "-> bool")) != _normalise(expected)


# --------------------------------------------------------------------------------------
# every hook has a test


def _test_functions() -> set[str]:
    """Names of every function defined in a test module under the test directories."""
    names: set[str] = set()
    for folder in TEST_DIRS:
        for path in folder.rglob("test_*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            names.update(
                node.name
                for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return names


def test_every_hook_has_a_test() -> None:
    defined = _test_functions()
    missing = [
        f"test_hook_{name}" for name in sorted(_hookspecs()) if f"test_hook_{name}" not in defined
    ]
    assert missing == [], f"no test defines {', '.join(missing)} (core/tests/test_hooks.py)"


# --------------------------------------------------------------------------------------
# api-support.md: every served route supported or partial; every endpoint of the spec

ROW = re.compile(
    r"^\| `(GET|HEAD|POST|PUT|DELETE|PATCH)` \| `([^`]+)` \| (supported|partial|not yet) \|",
    re.MULTILINE,
)


def _served_routes() -> set[tuple[str, str]]:
    """``(method, path)`` of every route in the ``ROUTES`` list of a ``pydockerd.api`` module,
    with aiohttp's ``{name:regex}`` placeholders written as the spec writes them."""
    routes: set[tuple[str, str]] = set()
    for module_info in pkgutil.iter_modules(pydockerd.api.__path__):
        module = importlib.import_module(f"pydockerd.api.{module_info.name}")
        for method, path, _handler in getattr(module, "ROUTES", []):
            routes.add((method, re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)))
    return routes


def _api_table() -> dict[tuple[str, str], str]:
    rows: dict[tuple[str, str], str] = {}
    for method, path, status in ROW.findall(API_DOC.read_text()):
        assert (method, path) not in rows, f"{method} {path} is listed twice"
        rows[method, path] = status
    return rows


def _spec_endpoints() -> set[tuple[str, str]]:
    """``(method, path)`` of every operation under ``paths:`` of the Swagger file (read with
    a pattern: paths are indented 2 spaces, methods 4)."""
    endpoints: set[tuple[str, str]] = set()
    path = ""
    in_paths = False
    for line in API_SPEC.read_text().splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            in_paths = line.rstrip() == "paths:"
            continue
        if not in_paths:
            continue
        if match := re.match(r"^  (/\S*):\s*$", line):
            path = match[1]
        elif match := re.match(r"^    (get|head|post|put|delete|patch):\s*$", line):
            endpoints.add((match[1].upper(), path))
    return endpoints


def test_routes_are_found() -> None:
    assert ("GET", "/_ping") in _served_routes()


def test_every_served_route_is_supported_or_partial() -> None:
    table = _api_table()
    wrong = {route: table.get(route) for route in _served_routes()}
    assert {r: s for r, s in wrong.items() if s not in ("supported", "partial")} == {}


def test_no_row_claims_a_route_that_is_not_served() -> None:
    claimed = {route for route, status in _api_table().items() if status != "not yet"}
    assert claimed - _served_routes() == set()


def test_table_lists_every_endpoint_of_the_spec() -> None:
    spec = _spec_endpoints()
    assert len(spec) > 100, "the spec was not read"
    table = set(_api_table())
    assert spec - table == set(), "endpoints of the spec missing from api-support.md"
    assert table - spec - _served_routes() == set(), "rows that are neither in the spec nor served"


# --------------------------------------------------------------------------------------
# operator-guide.md: every setting and every flag


def test_operator_guide_names_every_setting() -> None:
    guide = OPERATOR_GUIDE.read_text()
    for key in DaemonSettings.model_fields:
        assert f"`{key}`" in guide or f"`[{key}" in guide, key
        if key not in ("tls", "network", "registries", "plugins"):  # tables: keys are listed
            assert f"`PYDOCKERD_{key.upper()}`" in guide, key
    for key in NetworkSettings.model_fields:
        assert f"`[network]` `{key}` | `PYDOCKERD_NETWORK__{key.upper()}`" in guide, key
    for key in TLSSettings.model_fields:
        assert f"`[tls]` `{key}` | `PYDOCKERD_TLS__{key.upper()}`" in guide, key


def test_operator_guide_names_every_flag() -> None:
    guide = OPERATOR_GUIDE.read_text()
    context = click.Context(pydockerd_command)
    for param in pydockerd_command.get_params(context):
        for flag in param.opts:
            assert re.search(rf"`{re.escape(flag)}[ `]", guide), flag
    for name in pydockerd_command.list_commands(context):
        assert f"pydockerd {name}" in guide, name


# --------------------------------------------------------------------------------------
# plugin-author-guide.md: the complete example package works


def _example_files() -> dict[str, str]:
    """Relative path → content, for every code block of the guide's complete example whose
    first line is a comment naming a file."""
    section = _sections(AUTHOR_GUIDE.read_text())["A complete example"]
    files: dict[str, str] = {}
    for _lang, code in CODE_BLOCK.findall(section):
        first = code.splitlines()[0] if code.strip() else ""
        if match := re.fullmatch(r"# ([\w./-]+\.(?:py|toml))", first):
            files[match[1]] = code
    return files


@pytest.fixture
def example_venv(tmp_path: Path) -> Iterator[Path]:
    """A new virtual environment with pydockerd's core and vfs driver, pytest,
    pytest-asyncio, and the example package installed from the guide's text, as its author
    would."""
    uv = shutil.which("uv")
    assert uv, "uv is installed by scripts/bootstrap"
    package = tmp_path / "pydockerd-storage-memory"
    for relative, content in _example_files().items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_text(content)
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"

    def run(*args: str | Path) -> None:
        result = subprocess.run(
            [str(arg) for arg in args], capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr

    run(uv, "venv", "--quiet", "--python", sys.executable, venv)
    run(
        uv,
        "pip",
        "install",
        "--quiet",
        "--python",
        python,
        REPO / "core",
        REPO / "storage_drivers" / "vfs",
        f"pytest=={pytest.__version__}",
        f"pytest-asyncio=={importlib.metadata.version('pytest-asyncio')}",
    )
    run(uv, "pip", "install", "--quiet", "--python", python, package)
    yield python
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_example_package_is_complete() -> None:
    files = _example_files()
    assert set(files) == {
        "pyproject.toml",
        "src/pydockerd_storage_memory/__init__.py",
        "src/pydockerd_storage_memory/driver.py",
        "src/pydockerd_storage_memory/plugin.py",
        "tests/test_memory.py",
    }
    for relative, code in files.items():
        if relative.endswith(".py") and "/src/" in f"/{relative}":
            imported = {
                alias.name if isinstance(node, ast.Import) else node.module or ""
                for node in ast.walk(ast.parse(code))
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in node.names
            }
            core = {name for name in imported if name.split(".")[0] == "pydockerd"}
            assert core <= {"pydockerd.plugin"}, f"{relative} imports {core}"


def test_example_package_passes_its_own_tests(example_venv: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYDOCKERD_"))}
    tests = tmp_path / "pydockerd-storage-memory" / "tests"
    result = subprocess.run(
        [str(example_venv), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
        cwd=tests.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    own = len(re.findall(r"^def test_", _example_files()["tests/test_memory.py"], re.MULTILINE))
    from pydockerd.testing.storage import StorageDriverSuite

    suite = len([name for name in dir(StorageDriverSuite) if name.startswith("test_")])
    assert f"{own + suite} passed" in result.stdout, result.stdout
