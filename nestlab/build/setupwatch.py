"""Watching the domain that installs Windows: what step setup is in, and when to give
up early instead of waiting out the build's timeout.

The build domain has no network. Its first serial port (COM1 in Windows) is logged
to a file on L0, and the guest writes marker lines to it: the answer file's
specialize pass ``specialize``, build.ps1 ``first-logon``, ``sysprep-start``,
then ``sysprep-done``, or the last lines of sysprep's
``Panther\\setuperr.log`` (``setuperr: ...``) and ``sysprep-failed: <why>``.
Each line is ``nestlab-build: <marker>[: <detail>]``.

The build ends at once when sysprep says it failed, when a step after the first
logon lasts far longer than it should, and when setup has not logged on and the
screen has shown nothing new for minutes: a prompt (the product key) is a still
picture. That last one is a guess and the message says so.

Verified only against fakes (tests/unit/test_setupwatch.py): no Windows guest
runs where nestlab is developed. That Windows writes these lines to COM1 (cmd's
``> COM1``, .NET's SerialPort) is from its documentation, not from a real run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import libvirt

from nestlab.build.images import ImageBuildError
from nestlab.errors import escape_control_chars, shorten
from nestlab.files import FileProblem, KiB, read_tail_bytes
from nestlab.virt.screens import ScreenRecorder
from nestlab.waiting import NotYet

MARKER = "nestlab-build: "
SERIAL_TAIL = 256 * KiB
"""Only the serial log's end is read: the markers are its last lines (the firmware's
boot messages come first)."""
STALL = 12 * 60.0
"""Before the first logon, this long with no new screen ends the build. Every step of
a good install changes the screen within minutes (percentages, a spinner)."""
STEP_LIMIT = 30 * 60.0
"""After the first logon, no step (build.ps1, sysprep, powering off) takes this long."""
SETUPERR_LINES = 8

STEPS = {
    None: "windowsPE: installing from the ISO",
    "specialize": "specialize and OOBE, before the first logon",
    "first-logon": "first logon: build.ps1 runs",
    "sysprep-start": "sysprep generalizes",
    "sysprep-done": "sysprep done: powering off",
}
"""What each marker means as a step of the build (None: no marker yet)."""


@dataclass(frozen=True)
class SetupMarkers:
    """What the serial log says: the last step marker, sysprep's failure and its log."""

    last: str | None
    failed: str | None
    setuperr: tuple[str, ...]

    @property
    def step(self) -> str:
        return STEPS[self.last]

    @property
    def logged_on(self) -> bool:
        return self.last not in (None, "specialize")


def parse_markers(text: str) -> SetupMarkers:
    """The markers in the serial log's text (anything else on the port is ignored)."""
    last: str | None = None
    failed: str | None = None
    setuperr: list[str] = []
    for line in text.splitlines():
        _before, found, marker = line.partition(MARKER)
        if not found:
            continue
        kind, _colon, detail = marker.strip().partition(":")
        detail = shorten(escape_control_chars(detail.strip()), 300)
        if kind in STEPS:
            last = kind
        elif kind == "sysprep-failed":
            failed = detail or "no reason given"
        elif kind == "setuperr" and detail:
            setuperr = [*setuperr[-(SETUPERR_LINES - 1):], detail]
    return SetupMarkers(last, failed, tuple(setuperr))


def read_markers(serial_log: Path) -> SetupMarkers:
    """The markers so far; none while the log does not exist yet."""
    try:
        data, _cut = read_tail_bytes(serial_log, SERIAL_TAIL, "serial log")
    except FileProblem:
        return parse_markers("")
    return parse_markers(data.decode("utf-8", errors="replace"))


class SetupWatch:
    """One install domain watched between waits: each ``poll`` reads the serial log and
    takes a screenshot, and ends the build as soon as it cannot succeed."""

    def __init__(self, dom: libvirt.virDomain, serial_log: Path, screens: ScreenRecorder,
                 progress: Callable[[str], None],
                 is_active: Callable[[libvirt.virDomain], bool],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.dom = dom
        self.serial_log = serial_log
        self.screens = screens
        self.progress = progress
        self.is_active = is_active
        self.clock = clock
        self.started = clock()
        self.markers = parse_markers("")
        self._step_since = self.started

    def poll(self) -> bool:
        """True once sysprep has powered the domain off; ``NotYet`` with the step and the
        latest screenshot while it runs; ``ImageBuildError`` when it cannot succeed."""
        running = self.is_active(self.dom)
        if running:
            self.screens.take(self.dom)
        self._read()
        if self.markers.failed is not None:
            last_error = self.markers.setuperr[-1:] or ("setuperr.log was empty or missing",)
            raise self.failure(f"sysprep failed: {self.markers.failed}; {last_error[0]}",
                               self._setuperr())
        if not running:
            return self._powered_off()
        self._give_up_when_stuck()
        minutes = (self.clock() - self.started) / 60
        raise NotYet(f"{self.markers.step} ({minutes:.0f} min); {self.screens.where()}")

    def _read(self) -> None:
        markers = read_markers(self.serial_log)
        if markers.last != self.markers.last:
            self._step_since = self.clock()
            self.progress(f"setup: {markers.step}")
        self.markers = markers

    def _powered_off(self) -> bool:
        if self.markers.last == "sysprep-done":
            return True
        if self.markers.last is None:
            # No marker at all: the serial port may not have worked. The power-off is
            # then the only sign, as before markers existed.
            self.progress("the domain powered off; no marker came over its serial port, so "
                          "sysprep's success is not confirmed")
            return True
        raise self.failure("the install domain powered off before sysprep finished")

    def _give_up_when_stuck(self) -> None:
        now = self.clock()
        if self.markers.logged_on:
            if now - self._step_since >= STEP_LIMIT:
                raise self.failure(f"no progress for {(now - self._step_since) / 60:.0f} min "
                                   "after the first logon")
            return
        still = self.screens.unchanged_for()
        if still is not None and still >= STALL:
            raise self.failure(
                f"no progress for {still / 60:.0f} min: the screen shows nothing new and "
                "setup has not logged on; probably waiting at a prompt such as the product "
                "key",
                "Open the last screenshot to see the prompt. Evaluation media install "
                "without a key; retail and volume media ask for one.")

    def _setuperr(self) -> str | None:
        if not self.markers.setuperr:
            return None
        return "The end of setuperr.log:\n  " + "\n  ".join(self.markers.setuperr) + "\n"

    def failure(self, why: str, hint: str | None = None) -> ImageBuildError:
        """The build's error: why, the step it was in, and the last screenshot's path
        (always last), with the serial log in the hint."""
        more = f"The serial log of the build is {self.serial_log}."
        return ImageBuildError(f"Windows setup: {why} (step: {self.markers.step}); "
                               f"{self.screens.where()}",
                               hint=f"{hint} {more}" if hint else more)
