"""On this Debian machine: every program in nestlab/programs.py comes from the package it
names, and `make system-deps` (the Makefile's DEBS, without Recommends) installs it.

A fresh machine once failed `make test` with "virt-xml-validate: xmllint: not found":
xmllint's package is only a Recommends of libvirt's, and DEBS are installed without them.
"""

from __future__ import annotations

import shutil

import pytest

from nestlab.programs import PROGRAMS, Program
from tests.conftest import REPO
from tests.debian import Graph, apt_graph, essential_packages, makefile_debs, owning_package, unmet

# Debian's own folders: a program in /usr/local or a venv is not what dpkg installed.
DEBIAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# DEBS before issue #7: xmllint and pgrep came only through Recommends, or not at all.
DEBS_BEFORE_ISSUE_7 = [
    "libvirt-daemon-system", "libvirt-clients", "libvirt-dev", "pkg-config", "gcc",
    "python3-dev", "python3-venv", "qemu-system-x86", "qemu-utils", "mmdebstrap", "e2fsprogs",
    "dnsmasq-base", "iptables", "iproute2", "openssh-client", "ovmf", "cpio",
]


@pytest.fixture(scope="module")
def debs() -> list[str]:
    return makefile_debs(REPO / "Makefile")


@pytest.fixture(scope="module")
def graph(debs: list[str]) -> Graph:
    return apt_graph(sorted({*debs, *DEBS_BEFORE_ISSUE_7}))


@pytest.fixture(scope="module")
def essential() -> set[str]:
    found = essential_packages()
    assert {"coreutils", "dpkg", "util-linux"} <= found
    return found


@pytest.mark.parametrize("program", PROGRAMS, ids=[p.name for p in PROGRAMS])
def test_the_listed_package_provides_the_program(program: Program) -> None:
    path = shutil.which(program.name, path=DEBIAN_PATH)
    assert path is not None, (f"{program.name} is not installed here; `make system-deps` "
                              f"should have installed {program.package}")
    assert owning_package(path) == program.package, path


@pytest.mark.parametrize("program", PROGRAMS, ids=[p.name for p in PROGRAMS])
def test_make_system_deps_installs_the_program(program: Program, debs: list[str],
                                               graph: Graph, essential: set[str]) -> None:
    assert unmet({program.name: program.package}, debs, graph, essential) == [], (
        f"{program.package} (for {program.name}) is neither in the Makefile's DEBS nor a "
        "Depends/Pre-Depends of them: add it to DEBS")


def test_the_check_catches_what_only_a_recommends_brought(graph: Graph,
                                                          essential: set[str]) -> None:
    """Negative control on real apt data: the DEBS that broke a fresh machine fail here."""
    programs = {p.name: p.package for p in PROGRAMS}
    flagged = {u.program for u in unmet(programs, DEBS_BEFORE_ISSUE_7, graph, essential)}
    assert {"xmllint", "pgrep"} <= flagged


def test_owning_package_follows_usrmerge_and_alternatives() -> None:
    # /usr/sbin/ip is a symlink dpkg does not know; /sbin/ip is iproute2's.
    assert owning_package("/usr/sbin/ip") == "iproute2"
    # update-alternatives: /usr/sbin/iptables -> /etc/alternatives/iptables -> xtables-*
    assert owning_package("/usr/sbin/iptables") == "iptables"
    assert owning_package("/usr/bin/gcc") == "gcc"  # the symlink's owner, not gcc-12
    assert owning_package("/nonexistent/nestlab-no-such-program") is None
