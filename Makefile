# One set of commands for people and CI. A fresh machine needs only python3 (3.11+).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# The suite runs on this many pytest-xdist workers, each file's tests on one of them (a file's
# servers and fixtures are its own); the schema fuzz runs after, in one process: its generated
# tests share one test id, which xdist cannot share out.
PYTEST_WORKERS ?= 2

.PHONY: run install install-test test lint format bench browser-deps deploy-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

# Debian's Chromium for the Playwright browser tests (installed when missing and we are root).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Browser tests need Debian's chromium: sudo apt-get install chromium"; fi; }

# Debian's nginx and openssl for the deployment test (tests/deploy/, run on PostgreSQL + Redis).
deploy-deps:
	@{ command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx; } && command -v openssl >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx openssl gettext-base >/dev/null; \
	  else echo "The deployment test needs Debian's nginx: sudo apt-get install nginx"; fi; }

lint: install-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install-test
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

test: install-test browser-deps deploy-deps
	$(PY) -m ruff check .
	$(PY) -m deptry .
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not fuzz" $(PYTEST_ARGS)
	$(PY) -m pytest -m fuzz $(PYTEST_ARGS) || [ $$? = 5 ]

bench: install-test
	$(PY) bench/run.py
