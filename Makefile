# Quick start: `make demo` and `make test`. Each creates .venv when missing and installs
# torch first with an exact version (on a CPU machine that is the local CPU wheel; an open
# range would pull several GB of CUDA packages), then the project with its dev extras.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
TORCH  := torch==2.13.0

.PHONY: demo test bench lint typecheck clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/secagg demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	mkdir -p .benchmarks
	$(PY) -m pytest benchmarks -q --benchmark-only --benchmark-columns=min,median,mean,rounds \
		--benchmark-json=.benchmarks/latest.json

lint: $(STAMP)
	$(VENV)/bin/ruff check secagg protocols clients tests benchmarks
	$(VENV)/bin/ruff format --check secagg protocols clients tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy secagg protocols clients

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache *.egg-info
