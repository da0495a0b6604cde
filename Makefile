# Quick start: `make demo` runs a short simulated session; `make test` runs the tests.
# Each target does its own set-up (system packages when root or with sudo) in its own virtual
# environment: `make demo` in .venv-demo with the core install only (what `pip install zaprig`
# gives a new user), `make test` in .venv with every extra and the test tools.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_VENV := .venv-demo
DEMO_BIN := $(DEMO_VENV)/bin
APT_PACKAGES := python3-venv xvfb xauth libgl1-mesa-dri libglu1-mesa libegl1 hdf5-tools \
	libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 \
	libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0 libdbus-1-3 libfontconfig1

.PHONY: demo test lint system-deps venv-support clean

# `python3 -m venv` needs ensurepip, which Debian ships apart (python3-venv)
venv-support:
	@$(PY) -c 'import ensurepip' 2>/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-venv; \
	}

$(BIN)/python: | venv-support
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(DEMO_BIN)/python: | venv-support
	$(PY) -m venv $(DEMO_VENV)
	$(DEMO_BIN)/pip install -q --upgrade pip

# the core install only ([project] dependencies, no extra): what `make demo` must run on
$(DEMO_VENV)/.core: pyproject.toml | $(DEMO_BIN)/python
	$(DEMO_BIN)/pip install -q -e .
	touch $@

## demo: a simulated session of the built-in protocol at 1% length (about 75 s), then its summary
demo: $(DEMO_VENV)/.core
	$(DEMO_BIN)/zaprig run --time-scale 0.01 --out sessions
	$(DEMO_BIN)/zaprig inspect "$$(ls -t sessions/*.h5 | head -n 1)"

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
	$(BIN)/mypy --strict -p rig.core -p rig.lanes  # the floor and the lanes, and all they import
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) $(DEMO_VENV) build *.egg-info
