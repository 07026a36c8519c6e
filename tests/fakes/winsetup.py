"""FAKE Windows install for tests of the image build's watch: no Windows runs here.

``FakeInstall`` plays an install domain along a script of moments, one per poll
of the build's wait (its ``sleep``): what the screen shows, what the guest writes
to COM1, whether it still runs. Which real behaviour it copies:

- A transient domain that powers off is gone: libvirt then raises on it
  ("Domain not found"), which the build reads as "not active"; a screenshot of it
  fails too.
- COM1 is a file on L0 that libvirt (virtlogd) appends to. cmd's ``echo ...>COM1``
  ends a line with CRLF, .NET's ``SerialPort.WriteLine`` with LF; the firmware
  (OVMF) writes its own boot messages first, escape sequences included.
- The screen: setup's steps show percentages and spinners, so a working install
  keeps showing new pictures; a prompt (the product key) is one picture, or two
  with a blinking caret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import libvirt

OVMF_NOISE = "\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001 \"UEFI QEMU DVD-ROM\"\r\n"


@dataclass(frozen=True)
class Moment:
    """What the guest does during one poll interval."""

    screen: bytes
    serial: str = ""
    running: bool = True


@dataclass
class FakeInstall:
    serial_log: Path
    moments: list[Moment]
    seconds_per_moment: float = 10.0
    now: float = 0.0
    at: int = -1
    screenshots_fail: bool = False
    polls: int = field(default=0)

    def __post_init__(self) -> None:
        self.serial_log.write_text(OVMF_NOISE)
        self.advance(0.0)

    @property
    def moment(self) -> Moment:
        return self.moments[self.at]

    def advance(self, _seconds: float) -> None:
        """The build's sleep between polls: the guest moves on to its next moment."""
        if self.at >= 0:
            self.now += self.seconds_per_moment
        self.at += 1
        if self.at >= len(self.moments):
            raise AssertionError(f"the build still waits after the install's last moment "
                                 f"({self.now / 60:.0f} min)")
        if self.moment.serial:
            with self.serial_log.open("a", newline="") as log:
                log.write(self.moment.serial)

    def clock(self) -> float:
        return self.now

    def is_active(self, _dom: object) -> bool:
        self.polls += 1
        return self.moment.running

    def grab(self, _dom: object) -> tuple[str, bytes]:
        libvirt.virResetLastError()  # else an error says the last one libvirt set, anywhere
        if self.screenshots_fail:
            raise libvirt.libvirtError("internal error: unable to take a screenshot")
        if not self.moment.running:
            raise libvirt.libvirtError("Domain not found: no domain with matching name")
        return "image/png", self.moment.screen


def installing(minutes: int, start: int = 0) -> list[Moment]:
    """Setup at work: a new percentage on every picture."""
    return [Moment(f"installing {start + n}".encode()) for n in range(minutes * 6)]


def prompt(minutes: int) -> list[Moment]:
    """A product-key prompt with a blinking caret."""
    return [Moment(b"product key |" if n % 2 else b"product key ") for n in range(minutes * 6)]


def marker(text: str, line_end: str = "\n") -> str:
    return f"nestlab-build: {text}{line_end}"
