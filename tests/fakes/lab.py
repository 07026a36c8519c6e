"""A lab on libvirt's test driver with FAKE L1s: the set-up that the integration tests'
fixtures (tests/integration/conftest.py) and bench/status.py share.

L0's libvirt is libvirt's test driver (the project's own testdriver.xml), one
connection for every command, as one libvirtd would be; each L1 is a
``FakeLinuxL1`` kept across commands like a real guest; the image cache holds
real qcow2 files and stand-in kernels.
"""

from __future__ import annotations

import contextlib
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from nestlab.build.images import BuiltImage, image_key, images_root, write_manifest
from nestlab.commands import context as labctx
from nestlab.commands import down as down_module
from nestlab.commands.up import up
from nestlab.drivers.base import BootWatch
from nestlab.drivers.linux import LinuxDriver
from nestlab.host.facts import HostFacts
from nestlab.lab.labfile import load_lab
from nestlab.plan import GuestPlan, HostPlan
from nestlab.progress import Reporter
from nestlab.virt import objects
from tests.conftest import facts
from tests.fakes.linux import TESTDRIVER, FakeLinuxL1, FakePrime


def host_facts(_uri: str) -> HostFacts:
    return facts("amd-nested-1")


def open_l0(monkeypatch: pytest.MonkeyPatch) -> tuple[libvirt.virConnect, Callable[[], Any]]:
    """(L0's connection, how to really close it): every command of the test gets this one
    connection (the test driver keeps its state per connection), and cannot close it."""
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(f"test://{TESTDRIVER}")
    really_close = conn.close
    conn.close = lambda: 0
    monkeypatch.setattr(labctx, "connect", lambda _uri: conn)
    monkeypatch.setattr(down_module, "connect", lambda _uri: conn)
    return conn, really_close


def fake_l1s(monkeypatch: pytest.MonkeyPatch, l0: libvirt.virConnect | None = None,
             key: Callable[[HostPlan], str] = lambda host: host.name
             ) -> dict[str, FakeLinuxL1]:
    """The FAKE L1s by name (``key``: by domain name where several labs, such as seats,
    have L1s of the same name), kept across commands like real guests; a test may put its
    own in first. With ``l0``, each answers only while its domain runs there and follows
    it: booted again, its L2s are off; booted from a new disk, it is a new L1."""
    l1s: dict[str, FakeLinuxL1] = {}
    by_domain: dict[str, FakeLinuxL1] = {}
    saved_by: dict[str, FakeLinuxL1] = {}

    def session(_self: LinuxDriver, host: HostPlan) -> FakeLinuxL1:
        if key(host) not in l1s:
            l1s[key(host)] = FakeLinuxL1(host.name, cpus=host.cpus,
                                         booted_from=None if l0 is None else (
                                             lambda: l0_boot(l0, host)))
        by_domain[host.domain_name] = l1s[key(host)]
        return l1s[key(host)]

    real_save, real_restore = objects.save_domain, objects.restore_domain

    def save_domain(dom: libvirt.virDomain, path: Path) -> None:
        """L0 saves an L1: its fake keeps what it holds now (nestlab reached it first)."""
        real_save(dom, path)
        saved_by[str(path)] = by_domain[dom.name()]
        saved_by[str(path)].memory_saved(path)

    def restore_domain(conn: libvirt.virConnect, path: Path) -> None:
        real_restore(conn, path)
        saved_by[str(path)].memory_restored(path)

    monkeypatch.setattr(objects, "save_domain", save_domain)
    monkeypatch.setattr(objects, "restore_domain", restore_domain)

    def l2_session(_self: LinuxDriver, l1: FakeLinuxL1, guest: GuestPlan) -> FakePrime:
        return FakePrime(guest.name, guest.domain_name, l1)

    @contextlib.contextmanager
    def watch_boot(_self: LinuxDriver, host: HostPlan,
                   _conn: libvirt.virConnect | None) -> Iterator[BootWatch]:
        yield FakeConsole(lambda: (l0 is None or l0_boot(l0, host) is not None) and (
            key(host) not in l1s or l1s[key(host)].reachable))

    monkeypatch.setattr(LinuxDriver, "session", session)
    monkeypatch.setattr(LinuxDriver, "l2_session", l2_session)
    monkeypatch.setattr(LinuxDriver, "watch_boot", watch_boot)
    return l1s


class FakeConsole(BootWatch):
    """A FAKE L1's console log: it has announced SSH when its domain runs and it answers
    (``answers``); else the announcement does not come, which a real watch learns only
    when its time is up: this one says so at once, and `up` tries SSH as it then would."""

    def __init__(self, answers: Callable[[], bool]) -> None:
        self.answers = answers

    def await_ready(self, seconds: float, cancel: threading.Event,
                    progress: Callable[[str], None]) -> bool:
        return self.answers()


def l0_boot(l0: libvirt.virConnect, host: HostPlan) -> tuple[object, int] | None:
    """(the L1's disk, its domain's id) while its domain runs on L0; None otherwise. The
    disk is its chain of layers, top first, each a file (inode) written anew (mtime); a
    new start is a new id."""
    try:
        dom = l0.lookupByName(host.domain_name)
    except libvirt.libvirtError:
        return None
    if not dom.isActive():
        return None
    return disk_chain(host.disk_path), int(dom.ID())


def disk_chain(path: Path) -> tuple[tuple[int, int], ...]:
    """Each layer of a qcow2 chain as (inode, mtime), top first, from the images' headers
    (QEMU's qcow2 spec: the backing file's name at the offset in bytes 8-15, of the
    length in bytes 16-19, both big-endian). A file that is no qcow2 has no backing."""
    chain = []
    current: Path | None = path
    while current is not None:
        st = current.stat()
        chain.append((st.st_ino, st.st_mtime_ns))
        with current.open("rb") as image:
            header = image.read(20)
            name = ""
            if len(header) == 20 and header.startswith(b"QFI\xfb"):
                offset, size = struct.unpack(">QI", header[8:20])
                image.seek(offset)
                name = image.read(size).decode() if offset else ""
        current = (current.parent / name) if name else None
    return tuple(chain)


def inventory(conn: libvirt.virConnect) -> dict[str, object]:
    """What L0's libvirt holds, to compare before and after a command."""
    return {"domains": sorted(d.name() for d in conn.listAllDomains(0)),
            "networks": sorted(n.name() for n in conn.listAllNetworks(0))}


def fake_home(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """NESTLAB_HOME and a cache with both images "built" (real qcow2, stand-in kernels)."""
    monkeypatch.setenv("NESTLAB_HOME", str(root / "home"))
    monkeypatch.setenv("NESTLAB_CACHE", str(root / "cache"))
    fake_images()
    return root / "home"


def fake_images() -> None:
    """Both images "built" in the image cache (NESTLAB_CACHE): a real qcow2 disk of 64 MiB,
    stand-in kernels."""
    for name in ("debian-12", "prime"):
        folder = images_root() / name / image_key(name)
        folder.mkdir(parents=True)
        (folder / "vmlinuz").write_bytes(f"kernel of {name}".encode())
        (folder / "vmlinux").write_bytes(f"uncompressed kernel of {name}".encode())
        (folder / "initrd.img").write_bytes(f"initrd of {name}".encode())
        zst = None
        if name == "prime":  # as a build makes them: the L2 image's kernel also zstd'ed
            zst = folder / "vmlinux.zst"
            subprocess.run(["zstd", "-q", str(folder / "vmlinux"), "-o", str(zst)], check=True)
        disk = None
        if name == "debian-12":
            disk = folder / "disk.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"],
                           check=True)
        write_manifest(folder, BuiltImage(name=name, key=folder.name, path=folder,
                                          kernel=folder / "vmlinuz",
                                          initrd=folder / "initrd.img", disk=disk, size=1,
                                          seconds=0.0, built="2026-01-01T00:00:00Z",
                                          vmlinux=folder / "vmlinux", vmlinux_zst=zst))


def bring_up(lab_file: Path, home: Path) -> tuple[list[Any], Reporter]:
    """`nestlab up -f lab_file` (no sandbox) against the test driver and the FAKE L1s."""
    lab = load_lab(lab_file)
    lab_dir = home / "labs" / lab.name
    reporter = Reporter(lab.name, lab_dir, "up", show=False)
    proofs = up(lab, lab_file, lab_dir, "test:///l0", False, host_facts, reporter)
    return proofs, reporter
