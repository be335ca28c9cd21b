"""Benchmarks of pydockerd against its peers (issue 8): ``make bench`` or ``python -m bench``.

Each figure runs for pydockerd and the peer alternately; the table gives medians and the
ratio pydockerd/peer against its goal, and ``bench/results/<timestamp>.json`` keeps every
run. See docs/performance.md for the method.
"""
