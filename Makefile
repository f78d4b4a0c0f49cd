# One command per chore; `make check` runs exactly what CI runs (.ci/run).
PY ?= .venv/bin/python
PACKAGES = classtrace producers stream_processors sinks readers smart_classroom_agents loadtests

.PHONY: install proto lint typecheck test test-fast check bench

install:            ## venv + the project with its dev extras
	python3 -m venv .venv && $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -e '.[dev]'

proto:              ## regenerate classtrace/v1 bindings from proto/
	$(PY) -m classtrace.protogen

lint:
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

typecheck:
	$(PY) -m mypy

test:               ## the whole suite: unit, integration (real Tansu + chDB), e2e, faults
	$(PY) -m pytest -q

test-fast:          ## unit tests only (no services)
	$(PY) -m pytest -q tests/unit

check:              ## what CI runs
	bash .ci/run

bench:
	$(PY) bench/ingest.py && $(PY) bench/processors.py && $(PY) bench/sink.py
