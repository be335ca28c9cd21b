"""docker-py 7.1 runs containers on pydockerd as on Docker."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest
from docker.errors import ContainerError, ImageNotFound, NotFound
from pydockerd.testing.daemon import DaemonProcess

pytestmark = pytest.mark.privileged


@pytest.fixture
def client(engine: DaemonProcess) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=engine.host, version="auto")
    try:
        yield client
    finally:
        client.close()


def test_run_returns_the_output(client: docker.DockerClient) -> None:
    assert client.containers.run("busybox", "echo hi", remove=True) == b"hi\n"


def test_run_failure_raises_container_error_with_stderr(client: docker.DockerClient) -> None:
    with pytest.raises(ContainerError) as failure:
        client.containers.run("busybox", ["sh", "-c", "echo oops >&2; exit 2"], remove=True)
    assert failure.value.exit_status == 2
    assert b"oops" in failure.value.stderr


def test_missing_image_is_image_not_found(client: docker.DockerClient) -> None:
    with pytest.raises(ImageNotFound, match="No such image: no-such-image:1"):
        client.containers.create("no-such-image:1", "true")


def test_detached_container_exec_logs_wait_remove(client: docker.DockerClient) -> None:
    container = client.containers.run(
        "busybox", ["sh", "-c", "echo started; sleep 30"], detach=True, labels={"k": "v"}
    )
    try:
        assert container.status == "created"  # the pre-start inspect, as docker-py does
        container.reload()
        assert container.status == "running"
        assert container.labels == {"k": "v"}
        result = container.exec_run(["sh", "-c", "echo from-exec; exit 3"])
        assert (result.exit_code, result.output) == (3, b"from-exec\n")
        assert container.logs() == b"started\n"
        assert [c.id for c in client.containers.list(filters={"label": "k=v"})] == [container.id]
        container.kill()
        assert container.wait()["StatusCode"] == 137
    finally:
        container.remove(force=True)
    with pytest.raises(NotFound):
        client.containers.get(container.id)


def test_volumes_through_docker_py(client: docker.DockerClient) -> None:
    volume = client.volumes.create("pyvol", labels={"made": "by-docker-py"})
    try:
        output = client.containers.run(
            "busybox",
            ["sh", "-c", "echo saved > /v/f; cat /v/f"],
            volumes={"pyvol": {"bind": "/v", "mode": "rw"}},
            remove=True,
        )
        assert output == b"saved\n"
        assert client.volumes.get("pyvol").attrs["Labels"] == {"made": "by-docker-py"}
    finally:
        volume.remove()


@pytest.mark.parametrize("how", ["rm by name", "auto-remove"])
def test_exec_instances_go_with_their_container(client: docker.DockerClient, how: str) -> None:
    name = f"exec-owner-{how.replace(' ', '-')}"
    container = client.containers.run(
        "busybox", ["sleep", "30"], name=name, detach=True, auto_remove=how == "auto-remove"
    )
    try:
        exec_id = client.api.exec_create(name, ["true"])["Id"]
        client.api.exec_start(exec_id)
        assert client.api.exec_inspect(exec_id)["ExitCode"] == 0
        if how == "auto-remove":
            container.kill()
            client.api.wait(container.id, condition="removed")
        else:
            client.api.remove_container(name, force=True)
        with pytest.raises(NotFound, match="No such exec instance"):
            client.api.exec_inspect(exec_id)
    finally:
        with pytest.raises(NotFound):
            container.remove(force=True)
