"""The native runtime's registration through its real entry point, and its probe for real."""

from __future__ import annotations

import importlib.metadata
import os
import signal
from pathlib import Path

import pytest
from pydockerd.plugin import DriverNotSupported, Runtime
from pydockerd.testing.drivers import driver_context, probe_as_user, register_from_entry_point
from pydockerd_runtime_native import syscalls as sc
from pydockerd_runtime_native.driver import NativeConfig, NativeRuntime

NOBODY = 65534


def test_the_entry_point_is_installed() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="pydockerd") if e.name == "native"]
    assert ep.value == "pydockerd_runtime_native.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "pydockerd-runtime-native"


def test_loading_the_entry_point_registers_the_runtime() -> None:
    registry = register_from_entry_point("native", Runtime)  # type: ignore[type-abstract]
    assert registry.names() == ["native"]
    assert registry.get("native") is NativeRuntime
    assert NativeRuntime.qualified_name() == "runtime.native"
    assert NativeRuntime.interface == "pydockerd.runtime.v1"
    assert NativeRuntime.description


def test_config() -> None:
    assert NativeConfig() == NativeConfig(cgroup_version="auto", cgroup_root="", setup_timeout=30)
    with pytest.raises(ValueError, match="cgroup_version"):
        NativeConfig(cgroup_version="3")
    with pytest.raises(ValueError, match="unknown"):
        NativeConfig(unknown=1)  # type: ignore[call-arg]


@pytest.mark.privileged
async def test_probe_passes_as_root_and_leaves_nothing(tmp_path: Path) -> None:
    await NativeRuntime.probe(driver_context(tmp_path, NativeConfig()))
    assert probe_cgroups() == []
    assert not exists(tmp_path / "run"), "a probe creates no directory"


def probe_cgroups() -> list[Path]:
    return list(Path("/sys/fs/cgroup").glob("*/pydockerd-probe-*"))


def exists(path: Path) -> bool:
    return path.exists()


@pytest.mark.privileged
def test_probe_skips_without_root(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    context = driver_context(tmp_path, NativeConfig())
    assert probe_as_user(NativeRuntime, context, NOBODY) == (
        "skip: the native runtime needs root (namespaces, mounts and cgroups)"
    )
    assert probe_as_user(NativeRuntime, context, 0) == "ok"


@pytest.mark.privileged
async def test_probe_skips_without_cgroups(tmp_path: Path) -> None:
    context = driver_context(tmp_path, NativeConfig(cgroup_version="1", cgroup_root=str(tmp_path)))
    with pytest.raises(DriverNotSupported, match="cgroup v1 controllers not mounted"):
        await NativeRuntime.probe(context)


@pytest.mark.privileged
async def test_probe_fails_when_its_child_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The namespaces are tried in a forked child: one that raises, or dies, is no pass."""

    def raises(flags: int) -> None:
        raise RuntimeError("no way")

    def dies(flags: int) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    context = driver_context(tmp_path, NativeConfig())
    monkeypatch.setattr(sc, "unshare", raises)
    with pytest.raises(DriverNotSupported, match="probe failed: RuntimeError: no way"):
        await NativeRuntime.probe(context)
    monkeypatch.setattr(sc, "unshare", dies)
    with pytest.raises(DriverNotSupported, match="probe's process ended with wait status 9"):
        await NativeRuntime.probe(context)
