"""The log-driver conformance suite (:mod:`pydockerd.testing.logs`) run against json-file,
with the default rotation and with files of 4 kB (a rotation every 40-odd records), plain
and compressed."""

from __future__ import annotations

from pydockerd.testing.logs import LogDriverSuite
from pydockerd_log_json_file.driver import JsonFileDriver


class TestJsonFileConformance(LogDriverSuite):
    driver_class = JsonFileDriver
    many_files_options = {"max-size": "4k", "max-file": "100"}


class TestJsonFileCompressedConformance(LogDriverSuite):
    driver_class = JsonFileDriver
    many_files_options = {"max-size": "4k", "max-file": "100", "compress": "true"}
