# One command each: `make demo` runs the demo site, `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: demo test lint typecheck bench load fuzz clean messages docs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[drf]" --group test --group import-tests --group vendors --group lint --group demo
	touch $@ $(VENV)/.demo

# The demo alone: the package's run-time dependencies and the `demo` group, no test tools.
# (A venv made by `make test` has all of it already.)
$(VENV)/.demo: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet -e . --group demo
	touch $@

demo: $(VENV)/.demo
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

# Languages shipped in otp_auth/locale/. `make messages` refreshes every catalog from the
# sources (templates and Python), then compiles them; tests/test_translations.py fails
# while any msgid is new, untranslated or fuzzy.
LANGUAGES ?= fr es pt_BR de ar
messages: $(VENV)/.installed
	mkdir -p otp_auth/locale
	cd otp_auth && DJANGO_SETTINGS_MODULE=tests.settings PYTHONPATH=.. ../$(VENV)/bin/django-admin \
		makemessages $(addprefix -l ,$(LANGUAGES)) --no-obsolete --no-wrap --no-location \
		--ignore 'static/*'
	cd otp_auth && DJANGO_SETTINGS_MODULE=tests.settings PYTHONPATH=.. ../$(VENV)/bin/django-admin \
		compilemessages

# The documentation site in build/docs; any warning (a broken link or anchor) fails it.
$(VENV)/.docs: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install --quiet --group docs
	touch $@

docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(VENV)/.installed
	$(PY) -m benchmarks

# Two gunicorn instances, PostgreSQL, a Redis of its own on 6390, locust: a few minutes.
load: $(VENV)/.installed
	$(PY) -m pip install --quiet --group load
	$(PY) -m benchmarks.load $(LOAD_ARGS)

clean:
	rm -rf $(VENV) dist build *.egg-info demo.sqlite3
