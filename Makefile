# Two commands on a fresh machine with Python 3.11+ and make:
#   make run    set up and run the app on the embedded default
#   make test   set up and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test setup setup-dev bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
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

bench: setup-dev
	$(BIN)/python bench/run.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/api_wait.py

clean:
	rm -rf $(VENV) staticfiles

# Issue 10's pipeline figures side by side with a plain asyncio script (a few
# minutes; QUICK=1 for 100 jobs at 3 s latency).
.PHONY: bench-throughput
bench-throughput: setup-dev
	$(BIN)/python bench/throughput.py $(if $(QUICK),--quick)
