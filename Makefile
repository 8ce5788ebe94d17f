# The two commands of the README: `make demo` and `make test`. Each creates .venv when needed.
# The demo installs only jsphere's own dependencies (no torch, onnx, tensorflow-datasets, pytest: a fresh clone's
# `make demo` spends its first minute training, not downloading); `make test` adds the extras to the same .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CORE_STAMP := $(VENV)/.jsphere-core
STAMP := $(VENV)/.jsphere-installed
WORKDIR ?= runs/quickstart
PYTEST_WORKERS ?= 2

.PHONY: demo test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(CORE_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	touch $(CORE_STAMP)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,dev]'
	touch $(CORE_STAMP) $(STAMP)

demo: $(CORE_STAMP)
	$(PY) -m jsphere.demo --workdir=$(WORKDIR)

test: $(STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs
