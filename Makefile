# The two set-up commands of the README, and helpers around them.
.PHONY: install test lint bench

install:  ## install everything and start pydockerd with its defaults
	scripts/install

test:     ## the whole test suite: ruff, mypy, pytest (needs root: real mounts and links)
	scripts/test

lint:     ## ruff and mypy only
	uv run --locked ruff check . && uv run --locked ruff format --check . && uv run --locked mypy

bench:    ## benchmarks against the peers (docs/performance.md); BENCH_ARGS="--tiny" to try it
	scripts/bench $(BENCH_ARGS)
