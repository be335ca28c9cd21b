"""Fixtures: a reference registry, a transport with short delays, a content store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydockerd.images.blobsink import ContentBlobSink
from pydockerd.images.content import ContentStore
from pydockerd.testing.drivers import make_driver
from pydockerd.testing.registries import ProgressLog, ReferenceRegistry, reference_registry
from pydockerd_registry_distribution.transport import Config, DistributionTransport

FAST = {"retry_base_delay": 0.01, "retry_max_delay": 0.05, "connect_timeout": 5.0}


@pytest.fixture(scope="module")
def registry() -> Iterator[ReferenceRegistry]:
    with reference_registry() as running:
        yield running


@pytest.fixture
def config() -> Config:
    return Config(**FAST)  # type: ignore[arg-type]


@pytest.fixture
async def transport(tmp_path: Path, config: Config) -> AsyncIterator[DistributionTransport]:
    made = make_driver(DistributionTransport, tmp_path / "driver", config)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
def sink(tmp_path: Path) -> ContentBlobSink:
    return ContentBlobSink(ContentStore(tmp_path / "content"))


@pytest.fixture
def progress() -> ProgressLog:
    return ProgressLog()
