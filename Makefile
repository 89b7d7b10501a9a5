# One command each: `make demo` runs the demo site, `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: demo test lint typecheck bench load fuzz clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[drf]" --group test --group vendors --group lint --group demo
	touch $@

demo: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_seed
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

fuzz: $(VENV)/.installed
	PY=$(PY) bash scripts/api_fuzz.sh

bench: $(VENV)/.installed
	$(PY) -m benchmarks

# Two gunicorn instances, PostgreSQL, a Redis of its own on 6390, locust: a few minutes.
load: $(VENV)/.installed
	$(PY) -m pip install --quiet --group load
	$(PY) -m benchmarks.load $(LOAD_ARGS)

clean:
	rm -rf $(VENV) dist build *.egg-info demo.sqlite3
