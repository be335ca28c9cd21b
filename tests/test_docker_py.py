"""docker-py 7.1 against pydockerd: from_env-style version negotiation, version, info, events."""

from __future__ import annotations

import signal
import time

import docker
from pydockerd.testing.daemon import DaemonProcess

from tests.helpers import wait_for


def test_docker_py_version_and_info(daemon: DaemonProcess) -> None:
    client = docker.DockerClient(base_url=daemon.host, version="auto")
    try:
        assert client.api.api_version == "1.47"
        version = client.version()
        assert version["ApiVersion"] == "1.47"
        assert version["Platform"]["Name"].startswith("pydockerd ")
        info = client.info()
        assert info["Driver"] == "overlay"
        assert info["DockerRootDir"] == str(daemon.data_root)
        assert client.ping() is True
    finally:
        client.close()


def test_docker_py_events_with_since_and_until(daemon: DaemonProcess) -> None:
    client = docker.DockerClient(base_url=daemon.host, version="auto")
    try:
        since = time.time() - 1
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in daemon.log(), what="the reload")
        events = list(
            client.events(
                since=since, until=time.time() + 0.5, decode=True, filters={"type": "daemon"}
            )
        )
        assert [(e["Type"], e["Action"]) for e in events] == [("daemon", "reload")]
        assert events[0]["Actor"]["ID"] == client.info()["ID"]
    finally:
        client.close()
