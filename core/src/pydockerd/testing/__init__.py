"""Test kits for pydockerd and its plugins (a pytest plugin, loaded automatically).

- :mod:`pydockerd.testing.daemon`: start a real, isolated daemon in a subprocess.
- :mod:`pydockerd.testing.pytest_plugin`: the ``daemon`` and ``daemon_factory`` fixtures.
"""
