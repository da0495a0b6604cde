# Quick start: `make demo` runs a short simulated session; `make test` runs the tests.
# Each target does its own set-up (a virtual environment in .venv; system packages when root).

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := python3-venv xvfb xauth libgl1-mesa-dri libglu1-mesa libegl1 hdf5-tools \
	libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 \
	libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0 libdbus-1-3 libfontconfig1

.PHONY: demo test lint system-deps clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.core

## demo: a simulated session of the built-in protocol at 1% length (about 75 s), then its summary
demo: $(VENV)/.core
	$(BIN)/zaprig run --time-scale 0.01 --out sessions
	$(BIN)/zaprig inspect "$$(ls -t sessions/*.h5 | head -n 1)"

## system-deps: Xvfb, Mesa and the Qt/X libraries the tests need (Debian; needs root or sudo)
system-deps:
	@if ! dpkg-query -W -f='$${Status}\n' $(APT_PACKAGES) 2>/dev/null | grep -qv '^install ok installed$$' \
		&& [ "$$(dpkg-query -W -f='$${Status}\n' $(APT_PACKAGES) 2>/dev/null | wc -l)" -eq "$(words $(APT_PACKAGES))" ]; \
	then :; else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES); \
	fi

## test: the test suite (slow benchmarks are skipped; add --runslow through PYTEST_ARGS)
test: system-deps $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
