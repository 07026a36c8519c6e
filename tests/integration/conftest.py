"""Fixtures for commands run as plain tests: L0's libvirt is libvirt's test driver (the
project's own testdriver.xml), the L1s and L2s are FAKE sessions (tests/fakes/linux.py)
whose libvirt is a test driver too. Disks are real qcow2 overlays made by qemu-img in a
temporary folder. The set-up itself is tests/fakes/lab.py, shared with bench/status.py."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from click.testing import CliRunner

from nestlab import cli
from tests.conftest import EXAMPLES
from tests.fakes.lab import bring_up, fake_home, fake_l1s, host_facts, inventory, open_l0
from tests.fakes.linux import FakeLinuxL1

__all__ = ["LAB_FILE", "TWO_HOSTS", "bring_up", "host_facts", "inventory"]

LAB_FILE = EXAMPLES / "linux-nested.yaml"
TWO_HOSTS = textwrap.dedent("""\
    lab: pair
    networks:
      - name: lab
        cidr: 10.81.0.0/24
    hosts:
      - name: kvm1
        os: debian-12
        memory: 1GiB
        networks: [lab]
        guests: [{name: prime1}]
      - name: kvm2
        os: debian-12
        memory: 1GiB
        networks: [lab]
""")


@pytest.fixture
def l0(monkeypatch: pytest.MonkeyPatch) -> Iterator[libvirt.virConnect]:
    """One test-driver connection serves every command of the test, as one libvirtd would
    (the test driver keeps its state per connection)."""
    conn, really_close = open_l0(monkeypatch)
    yield conn
    really_close()


@pytest.fixture
def guests(monkeypatch: pytest.MonkeyPatch, l0: libvirt.virConnect) -> dict[str, FakeLinuxL1]:
    """The FAKE L1s by name, each following its domain on L0."""
    return fake_l1s(monkeypatch, l0)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """NESTLAB_HOME and a cache with both images "built" (real qcow2, stand-in kernels)."""
    return fake_home(tmp_path, monkeypatch)


def cli_json(*args: str) -> tuple[int, Any, str]:
    """Run the CLI in this process: (exit code, stdout as JSON if it is JSON, stderr)."""
    result = CliRunner().invoke(cli.main, list(args))
    try:
        out: Any = json.loads(result.stdout)
    except ValueError:
        out = result.stdout
    return result.exit_code, out, result.stderr
