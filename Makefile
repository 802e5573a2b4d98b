# Two commands matter (README quick start): `make app` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup app test test-fast fixtures lint bench device-check device-wheels

setup:
	@bash packaging/bootstrap.sh

# Start the desktop app on the bundled sample photographs.
app: setup
	$(PY) main.py resources/samples

# The whole test suite (headless), then the linter.
test: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q --timeout=600
	$(VENV)/bin/ruff check seem_annotator plugins tests main.py

# Only the numerical-equivalence tests against the official SEEM fixtures.
fixtures: setup
	$(PY) -m pytest -q -k fixture

lint: setup
	$(VENV)/bin/ruff check seem_annotator plugins tests main.py

# The GPU path in one go (issue 16): DEVICE=cuda|cpu, OUT=folder; see packaging/device_check.sh.
DEVICE ?= cuda
OUT ?= bench-results/device_check
# The project's .venv when there is one (it has torch), else the machine's python3 (a bare GPU box).
device-check:
	PYTHON=$(if $(wildcard $(PY)),$(PY),python3) bash packaging/device_check.sh --device $(DEVICE) --out $(OUT)

# Beforehand, with network: the wheels (.whl/) and fixture copy (.devfix/) a bare GPU machine lacks.
device-wheels:
	bash packaging/device_wheels.sh
