# The two commands of the README: `make app` runs the app, `make test` passes the tests.
# Both create the virtual environment in .venv on first use and install the pinned requirements
# and this package (editable).
PYTHON_BIN ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# The browser test drives Debian's chromium; `make test` installs it when missing (as root, or with sudo).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: app test lint bench screenshots

$(VENV)/installed.stamp: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON_BIN) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt
	$(PYTHON) -m pip install --quiet --no-deps -e .
	touch $@

app: $(VENV)/installed.stamp
	$(PYTHON) app.py

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

# Lint, the layering contract, then every test (offline).
test: $(VENV)/installed.stamp $(CHROMIUM) lint
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest

lint: $(VENV)/installed.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

bench: $(VENV)/installed.stamp
	$(PYTHON) -m benchmarks.core --json

# Refresh the README's screenshots (docs/screenshots/) from the browser test; tests never write them.
screenshots: $(VENV)/installed.stamp $(CHROMIUM)
	SCREENSHOTS=$(CURDIR)/docs/screenshots HF_HUB_OFFLINE=1 $(PYTHON) -m pytest tests/lab/test_app_browser.py
