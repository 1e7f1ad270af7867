# The two commands of the README: `make app` runs the app, `make test` passes the tests.
# Both create the virtual environment in .venv on first use and install the pinned requirements.
PYTHON_BIN ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# The browser test drives Debian's chromium; `make test` installs it when missing (as root, or with sudo).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: app test bench

$(VENV)/installed.stamp: requirements.txt requirements-dev.txt
	$(PYTHON_BIN) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt
	touch $@

app: $(VENV)/installed.stamp
	$(PYTHON) app.py

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

test: $(VENV)/installed.stamp $(CHROMIUM)
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest

bench: $(VENV)/installed.stamp
	$(PYTHON) -m inversion.bench --json
