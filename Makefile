# `make run` sets up and starts the whole service; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app wsgi
PYTEST_ARGS ?=

.PHONY: install run test test-fast lint format bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# One stamp per extra, redone when the dependencies change.
$(VENV)/.installed-%: setup.cfg pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet --editable '.[$*]'
	touch $@

install: $(VENV)/.installed-embedded

# The devserver migrates, seeds the demo titles, starts everything and says where to look.
run: $(VENV)/.installed-embedded
	$(PY) -m downloads_app.devserver

# Two pytest workers (PYTEST_WORKERS=0: none). The system tests, which start processes, run one
# at a time on one of them (their xdist group); the in-process tests share both.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadgroup)

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# The in-process tests only (no gunicorn, worker processes or browser): a few minutes.
test-fast: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_PARALLEL) tests/unit tests/api $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Benchmarks (not part of `make test`): PostgreSQL and SQLite, written to docs/performance.md.
# PEER=path/to/express-bullmq measures that peer beside the API figures (PostgreSQL run).
PEER ?=
bench: $(VENV)/.installed-test
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk"; exit 1; }
	$(PY) tests/bench/bench.py --write docs/performance.md $(if $(PEER),--peer $(PEER))

clean:
	rm -rf $(VENV) var *.egg-info
