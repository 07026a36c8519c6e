"""Fixtures for up, status and down against libvirt's test driver with FAKE L1s
(tests/fakes/lab.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from tests.fakes.lab import fake_home, fake_l1s, open_l0
from tests.fakes.linux import FakeLinuxL1


@pytest.fixture
def l0(monkeypatch: pytest.MonkeyPatch) -> Iterator[libvirt.virConnect]:
    """One test-driver connection serves every command of the test, as one libvirtd would
    (the test driver keeps its state per connection)."""
    conn, really_close = open_l0(monkeypatch)
    yield conn
    really_close()


@pytest.fixture
def guests(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeLinuxL1]:
    """The FAKE L1s by name, kept across commands like real guests."""
    return fake_l1s(monkeypatch)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """NESTLAB_HOME and a cache with both images "built" (real qcow2, stand-in kernels)."""
    return fake_home(tmp_path, monkeypatch)
