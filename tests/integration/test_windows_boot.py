"""A Windows L1's first boot shows its screen: `up` keeps screenshots in the L1's folder
(libvirt's test driver gives a PNG), names the latest in its waiting lines, ends a
failed wait with it and the step, and `status` names it while the L1 boots. Linux L1s
keep their console log instead: no screenshots. The L1 is a FAKE Hyper-V L1."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest

from nestlab.build.images import BuiltImage, find_image, images_root, write_manifest
from nestlab.commands.context import LabContext
from nestlab.commands.status import lab_status
from nestlab.commands.up import up
from nestlab.drivers.windows import WindowsDriver
from nestlab.host.facts import HostFacts
from nestlab.lab.labfile import load_lab
from nestlab.plan import HostPlan
from nestlab.progress import ProgressLines, Reporter
from nestlab.provision import windows
from nestlab.transport.base import Unreachable
from nestlab.waiting import Cancelled
from tests.conftest import EXAMPLES, facts
from tests.fakes.hyperv import FakeHyperVL1
from tests.fakes.linux import FakeLinuxL1

LAB_FILE = EXAMPLES / "windows-hyperv.yaml"
REFUSED = "ConnectionRefusedError: [Errno 111] Connection refused"


def intel_host(_uri: str) -> HostFacts:
    return facts("intel-nested-y")


@dataclass
class BootingL1(FakeHyperVL1):
    """A FAKE Hyper-V L1 whose WinRM does not answer at first, as WinRMTransport reports
    it: each failed try is heard by ``waiting``; a wait that runs out is ``Unreachable``."""

    silent_tries: int = 2
    answering: bool = True
    cancelled: bool = False
    """Another L1 failed: this wait is cancelled (``wait_for`` raises ``Cancelled``)."""

    def wait_until_reachable(self, timeout: float, waiting: Any = None,
                             cancel: threading.Event | None = None) -> None:
        for _ in range(self.silent_tries):
            if waiting is not None:
                waiting(REFUSED)
        if self.cancelled:
            raise Cancelled(f"{self.name}: WinRM: stopped waiting")
        if not self.answering:
            raise Unreachable(f"{self.name}: WinRM: timed out after {timeout:.0f}s "
                              f"(last: {REFUSED})", hint="`nestlab up` again continues.")


@pytest.fixture
def windows_l1s(monkeypatch: pytest.MonkeyPatch, l0: libvirt.virConnect,
                home: Path) -> dict[str, BootingL1]:
    """A cached Windows image and the FAKE L1s by name (each put in by the test)."""
    prime = find_image("prime")
    assert prime is not None
    for name in ("isolinux.bin", "ldlinux.c32"):  # stand-ins: the ISO is only copied
        (prime.path / name).write_bytes(name.encode() * 512)
    folder = images_root() / "windows-server-2016" / "eval"
    folder.mkdir(parents=True)
    disk = folder / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    write_manifest(folder, BuiltImage(name="windows-server-2016", key="eval", path=folder,
                                      kernel=None, initrd=None, disk=disk, size=1, seconds=0.0,
                                      built="2026-01-01T00:00:00Z"))
    l1s: dict[str, BootingL1] = {}

    def session(_self: WindowsDriver, host: HostPlan) -> BootingL1:
        return l1s.setdefault(host.name, BootingL1(host.name, heartbeat_after_polls=1))

    monkeypatch.setattr(WindowsDriver, "session", session)
    monkeypatch.setattr(windows, "_sleep", lambda _s: None)
    return l1s


class Lines:
    """What `up` prints, as a list."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines += [line for line in text.splitlines() if line]
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def windows_up(home: Path) -> list[str]:
    lab = load_lab(LAB_FILE)
    lab_dir = home / "labs" / lab.name
    shown = Lines()
    reporter = Reporter(lab.name, lab_dir, "up",
                        lines=ProgressLines("plain", shown))  # type: ignore[arg-type]
    up(lab, LAB_FILE, lab_dir, "test:///l0", False, intel_host, reporter)
    return shown.lines


def screens(home: Path) -> Path:
    return home / "labs" / "windows-hyperv" / "hosts" / "hv1" / "screens"


def test_up_keeps_screenshots_of_a_windows_l1_and_names_them_while_it_waits(
        windows_l1s: dict[str, BootingL1], home: Path) -> None:
    lines = windows_up(home)
    latest = screens(home) / "latest.png"
    assert latest.read_bytes().startswith(b"\x89PNG")
    waiting = [line.split(" ", 1)[1] for line in lines if "waiting for WINRM" in line]
    assert waiting == [f"hv1: waiting for WINRM ({REFUSED}); last screenshot: {latest}"] * 2


def test_a_windows_l1_that_never_answers_ends_with_its_last_screenshot_and_step(
        windows_l1s: dict[str, BootingL1], home: Path) -> None:
    windows_l1s["hv1"] = BootingL1("hv1", answering=False)
    with pytest.raises(Unreachable) as info:
        windows_up(home)
    assert info.value.message == (
        f"hv1: WinRM: timed out after 1800s (last: {REFUSED}) (step: first boot, waiting "
        f"for WinRM); last screenshot: {screens(home) / 'latest.png'}")


def test_a_cancelled_wait_is_left_as_it_is(windows_l1s: dict[str, BootingL1],
                                           home: Path) -> None:
    """Another L1's error is the one to show; this one only stopped waiting."""
    windows_l1s["hv1"] = BootingL1("hv1", cancelled=True)
    with pytest.raises(Cancelled) as info:
        windows_up(home)
    assert info.value.message == "hv1: WinRM: stopped waiting"


def test_status_names_the_latest_screenshot_of_a_windows_l1_that_boots(
        windows_l1s: dict[str, BootingL1], home: Path) -> None:
    windows_up(home)
    windows_l1s["hv1"].answering = False
    [host] = lab_status(LabContext.load(home / "labs" / "windows-hyperv"), 0.1).seen.hosts
    assert host.state == "booting"
    assert host.note is not None and host.note.startswith("does not answer yet: ")
    assert host.note.endswith(f"s old): {screens(home) / 'latest.png'}")


def test_a_linux_l1_keeps_no_screenshots(guests: dict[str, FakeLinuxL1], home: Path) -> None:
    from tests.fakes.lab import bring_up

    bring_up(EXAMPLES / "linux-nested.yaml", home)
    host_dir = home / "labs" / "linux-nested" / "hosts" / "kvm1"
    assert (host_dir / "disk.qcow2").exists() and not (host_dir / "screens").exists()
