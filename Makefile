# Two commands on a fresh machine with Python 3.12+ and make:
#   make run    set up and run the app on the embedded default
#   make test   set up and run the whole test suite

# Django 6.1 needs Python 3.12 or newer. Unless PYTHON names one, take the
# first of these commands that is new enough, else the newest such version
# that pyenv has installed (whether or not pyenv has it selected).
PY_OK := import sys; sys.exit(sys.version_info < (3, 12))
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell \
  for p in python3.14 python3.13 python3.12 python3 python; do \
    command -v $$p >/dev/null 2>&1 && $$p -c '$(PY_OK)' >/dev/null 2>&1 && { command -v $$p; exit 0; }; \
  done; \
  root=$$(pyenv root 2>/dev/null || echo "$${PYENV_ROOT:-$$HOME/.pyenv}"); \
  for v in $$(ls "$$root/versions" 2>/dev/null | grep -E '^3\.[0-9]' | sort -t. -k1,1nr -k2,2nr -k3,3nr); do \
    "$$root/versions/$$v/bin/python3" -c '$(PY_OK)' >/dev/null 2>&1 && { echo "$$root/versions/$$v/bin/python3"; exit 0; }; \
  done)
endif
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test setup setup-dev bench clean python-check

# Stops with a clear message when no Python 3.12+ was found (or PYTHON is older).
python-check:
	@test -n "$(PYTHON)" || { echo "No Python 3.12 or newer found (tried python3.14, python3.13, python3.12, python3 and pyenv's versions). Install one and try again, or name it: make $(or $(MAKECMDGOALS),run) PYTHON=/path/to/python3.12" >&2; exit 1; }
	@$(PYTHON) -c '$(PY_OK)' 2>/dev/null || { echo "$(PYTHON) is $$($(PYTHON) -V 2>&1); Django 6.1 needs Python 3.12 or newer: make $(or $(MAKECMDGOALS),run) PYTHON=/path/to/python3.12" >&2; exit 1; }

$(BIN)/python: | python-check
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# A $(VENV) made earlier with an older Python (3.11 before Django 6.1) is made anew.
$(VENV)/.installed: pyproject.toml | python-check $(BIN)/python
	@$(BIN)/python -c '$(PY_OK)' 2>/dev/null || { \
	  echo "== $(VENV) has $$($(BIN)/python -V 2>&1); Django 6.1 needs 3.12+: making $(VENV) anew with $(PYTHON)"; \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install -q --upgrade pip; }
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

run: setup
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py bootstrap_demo
	$(BIN)/python manage.py serve

test: setup-dev
	PYTHON=$(BIN)/python scripts/test

# DATABASE_URL=postgres://... : bench/throughput.py's figures on that (throw-away)
# database, in bench/results-postgresql.json; run.py and api_wait.py stay on SQLite.
bench: setup-dev
	$(BIN)/python bench/run.py
	$(BIN)/python bench/throughput.py $(if $(DATABASE_URL),--database-url '$(DATABASE_URL)')
	$(BIN)/python bench/api_wait.py

clean:
	rm -rf $(VENV) staticfiles

# The pipeline figures side by side with a plain asyncio script (several
# minutes; QUICK=1 for 100 jobs at 3 s latency; DATABASE_URL as for bench).
.PHONY: bench-throughput
bench-throughput: setup-dev
	$(BIN)/python bench/throughput.py $(if $(QUICK),--quick) $(if $(DATABASE_URL),--database-url '$(DATABASE_URL)')
