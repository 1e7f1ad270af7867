# The two commands of the README: `make app` runs the app, `make test` passes the tests.
# Both create the virtual environment in .venv on first use and install the pinned requirements.
PYTHON_BIN ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: app test bench

$(VENV)/installed.stamp: requirements.txt requirements-dev.txt
	$(PYTHON_BIN) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt
	touch $@

app: $(VENV)/installed.stamp
	$(PYTHON) app.py

test: $(VENV)/installed.stamp
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest

bench: $(VENV)/installed.stamp
	$(PYTHON) -m inversion.bench --json
