"""The peers, from Debian: installed when missing, and kept from running host-wide.

``apt-get install -y --no-install-recommends docker.io docker-registry skopeo`` brings
dockerd, containerd, runc, the reference registry and skopeo. Debian's docker.io also
installs a ``/usr/bin/docker`` CLI; the bench always runs ``/usr/local/bin/docker``, which
stays first in PATH. The packages' services (docker.service, docker.socket,
containerd.service, docker-registry.service) are kept from starting during the install
(a ``policy-rc.d`` that denies, when the host has none) and disabled afterwards: the bench
starts its own, isolated, instances.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["TOOLS", "ensure_peers", "missing"]

TOOLS = {
    "dockerd": "docker.io",
    "containerd": "docker.io",
    "runc": "docker.io",
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
}
"""Each program the bench needs of the peers, and the Debian package that has it."""

_UNITS = {
    "docker.io": ["docker.service", "docker.socket"],
    "containerd": ["containerd.service"],
    "docker-registry": ["docker-registry.service"],
}
_POLICY = Path("/usr/sbin/policy-rc.d")


def missing() -> list[str]:
    """The programs of :data:`TOOLS` not installed."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def ensure_peers(install: bool) -> list[str]:
    """Install the packages of the missing programs (with ``install``); the programs still
    missing afterwards."""
    absent = missing()
    if not absent or not install:
        return absent
    packages = sorted({TOOLS[tool] for tool in absent})
    print(f"bench: installing {' '.join(packages)} from Debian", file=sys.stderr)
    own_policy = not _POLICY.exists()
    if own_policy:  # the packages' postinst must not start their services host-wide
        _POLICY.write_text("#!/bin/sh\n# pydockerd bench: no service starts\nexit 101\n")
        _POLICY.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
        subprocess.run(command, env=env, check=True, stdout=sys.stderr)
    finally:
        if own_policy:
            _POLICY.unlink(missing_ok=True)
    if "docker.io" in packages:
        packages.append("containerd")
    for package in packages:
        units = _UNITS.get(package, [])
        if units and shutil.which("systemctl"):
            subprocess.run(
                ["systemctl", "disable", "--now", *units], capture_output=True, check=False
            )
    _stop_default_instances()
    docker = shutil.which("docker")
    if docker != "/usr/local/bin/docker" and Path("/usr/local/bin/docker").exists():
        print(f"bench: warning: docker in PATH is {docker}, not /usr/local/bin/docker")
    return missing()


def _stop_default_instances() -> None:
    """A dockerd or containerd a package started with the default paths (outside systemd,
    where invoke-rc.d ran init scripts): stop it."""
    for pidfile in (Path("/var/run/docker.pid"), Path("/run/containerd/containerd.pid")):
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            continue
        from pydockerd.testing.daemon import end_process

        end_process(pid)
