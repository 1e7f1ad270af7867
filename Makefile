# The two commands of the README: `make app` runs the app, `make test` passes the tests.
# Both create the virtual environment in .venv on first use and install the pinned requirements
# and this package (editable).
PYTHON_BIN ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# The browser test drives Debian's chromium; `make test` installs it when missing (as root, or with sudo).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: app test lint bench screenshots cards

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

# Refresh the README's result cards (docs/cards/) from the command line: the bundled Shapes model on a Shapes
# image and on a CC0 photo (DETR-R50's weights need the Hub). SPACE_URL: the app their links and QR codes open.
SPACE_URL ?= http://localhost:7860/
cards: $(VENV)/installed.stamp
	mkdir -p docs/cards
	$(PYTHON) -m inversion reconstruct examples/shapes_15.png --model shapes --out $$(mktemp --suffix=.png) \
		--card docs/cards/shapes_15.png --link "$(SPACE_URL)?model=shapes&example=shapes_15.png"
	$(PYTHON) -m inversion reconstruct examples/astronaut.png --model shapes --out $$(mktemp --suffix=.png) \
		--card docs/cards/astronaut_shapes_model.png --link "$(SPACE_URL)?model=shapes&example=astronaut.png" \
		--card-title "The Shapes-world DETR (never trained on photos) on a CC0 photo"
