"""Which storage driver the daemon uses: the written-down policy (docs/operator-guide.md).

1. **Named** by the operator (``storage_driver`` / ``--storage-driver``): that driver, which
   must be installed and must have probed ``ok``; otherwise the daemon refuses to start.
2. **Prior state**: the drivers whose state directory (``<data-root>/storage/<name>``) holds
   something. Exactly one: that one (it must probe ``ok``: the daemon does not silently
   abandon existing images). More than one: the daemon refuses to start and asks the
   operator to name one.
3. **Priority**: the ``ok`` driver with the lowest ``priority`` (overlay 10, vfs 90), ties
   broken by name.
4. Nothing ``ok``: the daemon refuses to start, listing each driver's reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydockerd.errors import ConfigError
from pydockerd.manager import ComponentStatus

__all__ = ["Selection", "select_storage_driver"]


@dataclass(frozen=True)
class Selection:
    """The chosen driver's status row, and the rule that chose it (logged and in ``info``)."""

    component: ComponentStatus
    rule: str


def _has_state(row: ComponentStatus) -> bool:
    state = row.state_dir  # set even when the driver's config is invalid (no context)
    return state is not None and state.is_dir() and any(state.iterdir())


def _require_ok(row: ComponentStatus, why: str) -> None:
    if row.status != "ok":
        raise ConfigError(
            f"storage driver {row.name!r} ({why}) cannot be used: {row.status}: {row.reason}"
        )


def select_storage_driver(rows: list[ComponentStatus], named: str) -> Selection:
    """Apply the policy above to the probed storage drivers ``rows``.

    :param named: the operator's choice, or ``""``.
    :raises ConfigError: when the policy refuses; the message says why and what is installed.
    """
    installed = sorted(row.name for row in rows)
    if named:
        row = next((r for r in rows if r.name == named), None)
        if row is None:
            raise ConfigError(
                f"storage driver {named!r} is not installed "
                f"(installed: {', '.join(installed) or 'none'})"
            )
        _require_ok(row, "named in the configuration")
        return Selection(row, "named in the configuration")
    with_state = [r for r in rows if _has_state(r)]
    if len(with_state) > 1:
        names = ", ".join(sorted(r.name for r in with_state))
        raise ConfigError(
            f"several storage drivers have state in the data-root ({names}); "
            "name one with storage_driver in daemon.toml or --storage-driver"
        )
    if with_state:
        _require_ok(with_state[0], "it holds the existing state")
        return Selection(with_state[0], "prior state in the data-root")
    usable = sorted(
        (r for r in rows if r.status == "ok"),
        key=lambda r: (r.driver.priority if r.driver else 0, r.name),
    )
    if not usable:
        reasons = "; ".join(f"{r.name}: {r.status}: {r.reason}" for r in rows) or "none installed"
        raise ConfigError(f"no storage driver can run on this host ({reasons})")
    return Selection(usable[0], "highest priority of the drivers that probed ok")
