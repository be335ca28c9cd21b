"""The host network driver: no isolation, the container uses the host's interfaces."""

from __future__ import annotations

from pydockerd.plugin import NetworkDriver

__all__ = ["HostDriver"]


class HostDriver(NetworkDriver):
    """The container joins the host's network namespace; nothing to create or remove."""

    name = "host"
    description = "the host's network namespace, shared"
    shares_host_namespace = True
    single_instance = True
