# The commands a newcomer needs:
#   make demo        - an example DAG end to end on a real Airflow against the bundled fake Polytomic server
#   make test        - the test matrix of ci/matrix.txt, every supported Airflow x Python (what CI runs)
#   make test-quick  - the suite in the development venv only (.venv, the newest Airflow), for the edit loop
#   make test-unit   - only tests/unit (the package, module by module) in .venv, stopping at the first failure
#   make test-prod   - the production-topology suite at full size (PostgreSQL, two triggerers)
#   make lint        - ruff and mypy
#   make docs        - the documentation site into docs/_build/html, warnings as errors
# uv is used when on PATH, else `python -m uv`, else installed by ci/find-uv (never assumed on PATH).

VENV ?= .venv
PY := $(VENV)/bin/python
# The first of these that runs (a pyenv shim of an inactive version does not).
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3.10 python3; do \
	  $$p -c 'import sys; assert sys.version_info >= (3, 10)' >/dev/null 2>&1 && { command -v $$p; break; }; done)
# How to run uv, resolved once, when a recipe first needs it (make clean never installs uv).
UV ?= $(eval UV := $(shell PYTHON="$(PYTHON)" ci/find-uv))$(UV)

.PHONY: install test test-quick test-unit test-prod lint docs demo bench clean

$(VENV)/.installed: pyproject.toml ci/matrix.txt
	UV="$(UV)" $(PYTHON) ci/matrix.py --install-dev $(VENV) --python "$(PYTHON)"
	@touch $@

install: $(VENV)/.installed

test:
	UV="$(UV)" $(PYTHON) ci/matrix.py

test-quick: install
	UV="$(UV)" $(PY) -m pytest -m "not e2e"

test-unit: install
	$(PY) -m pytest -q -x -m unit

# The production-topology suite at full size (PostgreSQL, two triggerers, 200 sensors and
# 200 webhook deliveries); `make test` runs it at CI size.
test-prod: install
	POLYTOMIC_E2E_SCALE=full $(PY) -m pytest -q -p no:randomly --timeout 3000 tests/e2e/test_e2e_production.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check airflow_provider_polytomic ci
	$(VENV)/bin/mypy airflow_provider_polytomic

# -n: every cross-reference must resolve; check_reference.py: every public name is documented.
# docs/_api (the generated module pages) is rebuilt each time, so a removed module leaves none.
docs: install
	rm -rf docs/_api
	$(PY) -m sphinx -b html -W --keep-going -n -q docs docs/_build/html
	$(PY) docs/check_reference.py docs/_build/html/objects.inv

demo: install
	$(PY) scripts/demo.py

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .demo .matrix .uv-bootstrap docs/_build docs/_api
