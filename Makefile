# The two commands a newcomer needs:
#   make demo   - an example DAG end to end on a real Airflow against the bundled fake Polytomic server
#   make test   - the whole test suite (what CI runs)
# Both create .venv with uv and install the package with its test extras first.

VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
UV ?= $(shell command -v uv 2>/dev/null)

.PHONY: install test lint demo bench clean

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(UV)" ]; then $(PYTHON) -m pip install --quiet uv; fi
	uv venv --quiet --allow-existing --python "$(PYTHON)" $(VENV)
	uv pip install --quiet --python $(PY) -e ".[test]"
	@touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check airflow_provider_polytomic
	$(VENV)/bin/mypy airflow_provider_polytomic

demo: install
	$(PY) scripts/demo.py

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .demo
