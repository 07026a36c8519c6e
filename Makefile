# nestlab's entry points. `make test` and (later) `make demo` do all their own
# set-up on a fresh Debian host: Debian packages (as root or through sudo), then
# a virtualenv in .venv with nestlab and its test tools.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
LAB    ?= examples/linux-nested.yaml

ROOT   := $(shell [ "$$(id -u)" = 0 ] || echo sudo -E)

# From Debian: libvirt's daemon and client tools (virt-xml-validate), headers to
# build libvirt-python, QEMU, mmdebstrap and e2fsprogs for the images, dnsmasq
# and iptables for libvirt's networks, iproute2 for namespaces, mount for the
# sandbox, OpenSSH's client; for the tests xmllint (libxml2-utils: virt-xml-validate
# runs it, libvirt only recommends it), cpio, pgrep (procps), git, make, and OpenSSH's
# server (each node of the test fleet runs one: tests/system/fleet.py).
# Installed with --no-install-recommends: a package that only a Recommends brings is
# missing. nestlab/programs.py lists every program with its package;
# tests/integration/test_debian_packages.py checks each is here or a Depends of these.
DEBS := libvirt-daemon-system libvirt-clients libvirt-dev pkg-config gcc python3-dev \
        python3-venv qemu-system-x86 qemu-utils mmdebstrap e2fsprogs zstd dnsmasq-base iptables \
        iproute2 mount openssh-client ovmf cpio procps libxml2-utils git make openssh-server

.PHONY: help system-deps venv test quick lint typecheck unit integration system check \
        images demo demo-down acceptance-windows acceptance-windows-os golden clean

help:
	@echo "make demo    install what it needs, build the images, bring up $(LAB) in a"
	@echo "             sandbox, show it, run a command in the L2, take it down (root/sudo)"
	@echo "make test    install what the tests need, lint, type-check, run every test"
	@echo "             (the system tests boot real nested labs: root/sudo, ~25 min)"
	@echo "make quick   lint, type-check, unit and integration tests only (no root)"
	@echo "make check   run the host check on $(LAB)"
	@echo "make acceptance-windows ISO=PATH [OS=windows-server-2022]   a Windows lab for"
	@echo "             real (KVM host, your Windows Server 2016/2019/2022 ISO; OS read from it)"
	@echo "make golden  rewrite tests/golden from the current templates (review the diff!)"

system-deps:
	@missing=$$(for p in $(DEBS); do \
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

system: venv
	$(ROOT) $(BIN)/pytest -s tests/system

quick: lint typecheck
	$(BIN)/pytest tests/unit tests/integration

# The README's test command. pytest exits 5 when it collects no test, which fails here too.
test: lint typecheck
	$(ROOT) $(BIN)/pytest -s tests/unit tests/integration tests/system

images: venv
	$(ROOT) $(BIN)/nestlab image build debian-12 prime

# A real nested lab end to end. A failure leaves the lab as it is: `make demo` again
# continues it, `make demo-down` removes it.
demo: images
	$(ROOT) $(BIN)/nestlab up --sandbox -f $(LAB)
	$(ROOT) $(BIN)/nestlab status -f $(LAB)
	$(ROOT) $(BIN)/nestlab exec -f $(LAB) prime1 -- sh -c 'echo "L2 $$(hostname): $$(uname -sr), up $$(cut -d" " -f1 /proc/uptime)s"'
	$(ROOT) $(BIN)/nestlab down -f $(LAB)

demo-down: venv
	$(ROOT) $(BIN)/nestlab down -f $(LAB)

# On a host with VT-x/AMD-V and nested KVM, with your own Windows Server 2016, 2019 or 2022
# ISO (evaluation ISOs work). The version is read from the ISO's install.wim (`nestlab image
# identify`), or given, and picks the example lab:
#   make acceptance-windows ISO=/path/to/WindowsServer.iso [OS=windows-server-2022]
WINLAB_windows-server-2016 := examples/windows-hyperv.yaml
WINLAB_windows-server-2019 := examples/windows-server-2019.yaml
WINLAB_windows-server-2022 := examples/windows-server-2022.yaml
WINLAB = $(WINLAB_$(OS))

acceptance-windows: venv
	@[ -n "$(ISO)" ] || { echo "usage: make acceptance-windows ISO=/path/to/WindowsServer.iso" \
	  "[OS=windows-server-2016|windows-server-2019|windows-server-2022]"; exit 2; }
	@os="$(OS)"; [ -n "$$os" ] || os=$$($(BIN)/nestlab image identify --iso "$(ISO)") || exit 2; \
	  echo "acceptance-windows: $$os from $(ISO)"; \
	  $(MAKE) --no-print-directory acceptance-windows-os OS="$$os" ISO="$(ISO)"

# The lab is named after its file; the acceptance tests find it by that name.
acceptance-windows-os:
	@[ -n "$(WINLAB)" ] || { echo "OS=$(OS): nestlab builds windows-server-2016," \
	  "windows-server-2019 or windows-server-2022"; exit 2; }
	$(BIN)/python -m pip install -q pywinrm
	$(ROOT) $(BIN)/nestlab check -f $(WINLAB)
	$(ROOT) $(BIN)/nestlab image build prime
	$(ROOT) $(BIN)/nestlab image build $(OS) --iso "$(ISO)"
	$(ROOT) $(BIN)/nestlab up -f $(WINLAB)
	$(ROOT) env NESTLAB_ACCEPTANCE_LAB=$(basename $(notdir $(WINLAB))) $(BIN)/pytest -s tests/acceptance
	$(ROOT) $(BIN)/nestlab down -f $(WINLAB)

check: venv
	$(BIN)/nestlab check -f $(LAB)

golden: venv
	$(BIN)/pytest tests/unit/test_render.py --update-golden

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
