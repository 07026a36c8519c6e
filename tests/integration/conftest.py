"""Fixtures for commands run as plain tests: L0's libvirt is libvirt's test driver (the
project's own testdriver.xml), the L1s and L2s are FAKE sessions (tests/fakes/linux.py)
whose libvirt is a test driver too. Disks are real qcow2 overlays made by qemu-img in a
temporary folder."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from nestlab.build.images import BuiltImage, images_root, recipe_dir, recipe_key, write_manifest
from nestlab.commands import context as labctx
from nestlab.commands import down as down_module
from nestlab.commands.up import up
from nestlab.drivers.linux import LinuxDriver
from nestlab.host.facts import HostFacts
from nestlab.lab.labfile import load_lab
from nestlab.plan import GuestPlan, HostPlan
from nestlab.progress import Reporter
from tests.conftest import EXAMPLES, facts
from tests.fakes.linux import TESTDRIVER, FakeLinuxL1, FakePrime

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


def host_facts(_uri: str) -> HostFacts:
    return facts("amd-nested-1")


@pytest.fixture
def l0(monkeypatch: pytest.MonkeyPatch) -> Iterator[libvirt.virConnect]:
    """One test-driver connection serves every command of the test, as one libvirtd would
    (the test driver keeps its state per connection)."""
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(f"test://{TESTDRIVER}")
    really_close = conn.close
    conn.close = lambda: 0  # type: ignore[method-assign]
    monkeypatch.setattr(labctx, "connect", lambda _uri: conn)
    monkeypatch.setattr(down_module, "connect", lambda _uri: conn)
    yield conn
    really_close()


@pytest.fixture
def guests(monkeypatch: pytest.MonkeyPatch, l0: libvirt.virConnect) -> dict[str, FakeLinuxL1]:
    """The FAKE L1s by name, kept across commands like real guests. Each answers only while
    its domain runs on L0, and follows it: booted again, its L2s are off; booted from a new
    disk, it is a new L1."""
    l1s: dict[str, FakeLinuxL1] = {}

    def session(_self: LinuxDriver, host: HostPlan) -> FakeLinuxL1:
        return l1s.setdefault(host.name, FakeLinuxL1(
            host.name, booted_from=lambda: l0_boot(l0, host)))

    def l2_session(_self: LinuxDriver, l1: FakeLinuxL1, guest: GuestPlan) -> FakePrime:
        return FakePrime(guest.name, guest.domain_name, l1)

    monkeypatch.setattr(LinuxDriver, "session", session)
    monkeypatch.setattr(LinuxDriver, "l2_session", l2_session)
    return l1s


def l0_boot(l0: libvirt.virConnect, host: HostPlan) -> tuple[object, int] | None:
    """(the L1's disk, its domain's id) while its domain runs on L0; None otherwise. A new
    overlay is a new file (inode) written anew (mtime); a new start is a new id."""
    try:
        dom = l0.lookupByName(host.domain_name)
    except libvirt.libvirtError:
        return None
    if not dom.isActive():
        return None
    disk = host.disk_path.stat()
    return (disk.st_ino, disk.st_mtime_ns), int(dom.ID())


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """NESTLAB_HOME and a cache with both images "built" (real qcow2, stand-in kernels)."""
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path / "cache"))
    for name in ("debian-12", "prime"):
        folder = images_root() / name / recipe_key(recipe_dir(name))
        folder.mkdir(parents=True)
        (folder / "vmlinuz").write_bytes(f"kernel of {name}".encode())
        (folder / "initrd.img").write_bytes(f"initrd of {name}".encode())
        disk = None
        if name == "debian-12":
            disk = folder / "disk.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"],
                           check=True)
        write_manifest(folder, BuiltImage(name=name, key=folder.name, path=folder,
                                          kernel=folder / "vmlinuz",
                                          initrd=folder / "initrd.img", disk=disk, size=1,
                                          seconds=0.0, built="2026-01-01T00:00:00Z"))
    return tmp_path / "home"


def bring_up(lab_file: Path, home: Path) -> tuple[list[Any], Reporter]:
    lab = load_lab(lab_file)
    lab_dir = home / "labs" / lab.name
    reporter = Reporter(lab.name, lab_dir, "up", show=False)
    proofs = up(lab, lab_file, lab_dir, "test:///l0", False, host_facts, reporter)
    return proofs, reporter


def inventory(conn: libvirt.virConnect) -> dict[str, object]:
    return {"domains": sorted(d.name() for d in conn.listAllDomains(0)),
            "networks": sorted(n.name() for n in conn.listAllNetworks(0))}
