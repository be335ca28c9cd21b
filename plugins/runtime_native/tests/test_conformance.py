"""The runtime conformance suite (:mod:`pydockerd.testing.runtime`) run against native."""

from __future__ import annotations

import pytest
from pydockerd.testing.runtime import RuntimeSuite
from pydockerd_runtime_native.driver import NativeRuntime

pytestmark = pytest.mark.privileged


class TestNativeConformance(RuntimeSuite):
    runtime_class = NativeRuntime
