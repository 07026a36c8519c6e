# nestlab's entry points. `make test` and (later) `make demo` do all their own
# set-up on a fresh Debian host: Debian packages (as root or through sudo), then
# a virtualenv in .venv with nestlab and its test tools.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
LAB    ?= examples/linux-nested.yaml

# What the tests need from Debian: libvirt's client tools (virt-xml-validate) and
# headers to build libvirt-python, a compiler, venv support.
TEST_DEBS := libvirt-clients libvirt-dev pkg-config gcc python3-dev python3-venv

.PHONY: help system-deps venv test lint typecheck unit integration check golden clean

help:
	@echo "make test    install what the tests need, then lint, type-check and run the tests"
	@echo "make check   run the host check on $(LAB)"
	@echo "make golden  rewrite tests/golden from the current templates (review the diff!)"

system-deps:
	@missing=$$(for p in $(TEST_DEBS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall when the package metadata changes.
$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

venv: system-deps $(VENV)/.installed

lint: venv
	$(BIN)/ruff check nestlab tests

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit

integration: venv
	$(BIN)/pytest tests/integration

# The README's test command. pytest exits 5 when it collects no test, which fails here too.
test: lint typecheck
	$(BIN)/pytest tests/unit tests/integration

check: venv
	$(BIN)/nestlab check -f $(LAB)

golden: venv
	$(BIN)/pytest tests/unit/test_render.py --update-golden

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
