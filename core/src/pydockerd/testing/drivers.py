"""Helpers for testing driver packages: load a driver through its real entry point, and
build the context a probe gets. :func:`mount_points` and :func:`mounts_under` are
``pydockerd.plugin``'s, re-exported."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from loguru import logger

from pydockerd.manager import driver_registry_of
from pydockerd.plugin import (
    MNT_DETACH,
    PROJECT_NAME,
    Driver,
    DriverConfig,
    DriverContext,
    DriverNotSupported,
    DriverRegistry,
    SystemError,
    mount_points,
    mounts_under,
    unmount,
)

__all__ = [
    "detach_mounts_under",
    "driver_context",
    "make_driver",
    "mount_points",
    "mount_safe_directory",
    "mounts_under",
    "probe_as_user",
    "register_from_entry_point",
]

D = TypeVar("D", bound=Driver)


def register_from_entry_point(entry_point: str, base: type[D]) -> DriverRegistry[D]:
    """Load the installed plugin ``entry_point`` (group ``pydockerd``) and run its
    registration hook for ``base``'s kind into a fresh registry, as the daemon does."""
    (ep,) = [
        e for e in importlib.metadata.entry_points(group=PROJECT_NAME) if e.name == entry_point
    ]
    registry: DriverRegistry[D] = driver_registry_of(ep.load(), base)
    return registry


def driver_context(
    directory: Path, config: DriverConfig | None = None, scratch_dir: Path | None = None
) -> DriverContext:
    """A :class:`DriverContext` whose directories are under ``directory``."""
    return DriverContext(
        state_dir=directory / "state",
        run_dir=directory / "run",
        scratch_dir=scratch_dir or directory / "scratch",
        config=config or DriverConfig(),
        logger=logger,
    )


def make_driver(cls: type[D], directory: Path, config: DriverConfig | None = None) -> D:
    """An instance of the driver class ``cls`` whose state, run and scratch directories are
    (created) below ``directory``, as the daemon (or the supervisor) hands them to it; call
    it again with the same ``directory`` for the instance a restarted daemon makes."""
    context = driver_context(directory, config or cls.Config())
    for path in (context.state_dir, context.run_dir, context.scratch_dir):
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return cls(context)


def detach_mounts_under(directory: Path) -> list[Path]:
    """Detach-unmount everything mounted at or below ``directory``; what was unmounted."""
    done: list[Path] = []
    for _ in range(100):  # stacked mounts come back one at a time
        points = mounts_under(directory)
        if not points:
            break
        for point in points:
            try:
                unmount(point, MNT_DETACH)
                done.append(point)
            except SystemError as e:
                logger.warning("cannot detach {}: {}", point, e)
    return done


@contextlib.contextmanager
def mount_safe_directory(prefix: str = "pdt-") -> Iterator[Path]:
    """A fresh directory with a short path under /tmp (mount options stay small); every
    mount below it is detached and it is deleted afterwards, whatever happened, and a mount
    left behind is then a failure."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        left = detach_mounts_under(path)
        shutil.rmtree(path, ignore_errors=True)
        assert not left, f"mounts were left behind: {left}"


def probe_as_user(driver: type[Driver], context: DriverContext, uid: int) -> str:
    """Run ``driver``'s probe in a forked child as ``uid`` (and gid ``uid``, no supplementary
    groups): ``ok``, ``skip: <reason>`` or ``error: <exception>``. Root passes most checks, so
    this is how a test sees what a probe says to an unprivileged user. The child never execs,
    so it needs no access to the interpreter."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            try:
                asyncio.run(driver.probe(context))
                result = "ok"
            except DriverNotSupported as e:
                result = f"skip: {e}"
            except BaseException as e:
                result = f"error: {type(e).__name__}: {e}"
            os.write(write_end, result.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        result = pipe.read()
    os.waitpid(pid, 0)
    return result
