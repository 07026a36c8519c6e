"""Screenshots kept while Windows installs or boots: a latest file and a small ring of
earlier, different ones; a failing screenshot is noted, never raised; how long the
screen has shown nothing new."""

from __future__ import annotations

import stat
from pathlib import Path

import libvirt
import pytest

from nestlab.virt.screens import ScreenRecorder, extension, latest_screenshot

DOMAIN = object()  # the recorder only hands the domain to its grab function


class Screen:
    """A guest's screen as a sequence of pictures, and a clock the test moves."""

    def __init__(self, mime: str = "image/x-portable-pixmap") -> None:
        self.mime = mime
        self.picture = b"P6 boot"
        self.now = 0.0
        self.fail: Exception | None = None

    def grab(self, dom: object) -> tuple[str, bytes]:
        assert dom is DOMAIN
        if self.fail is not None:
            raise self.fail
        return self.mime, self.picture

    def clock(self) -> float:
        return self.now


def recorder(tmp_path: Path, screen: Screen, keep: int = 3) -> ScreenRecorder:
    return ScreenRecorder(tmp_path / "screens", keep=keep, grab=screen.grab, clock=screen.clock)


def test_files_are_named_by_the_mime_type_libvirt_returns() -> None:
    assert extension("image/png") == "png"
    assert extension("image/x-portable-pixmap") == "ppm"
    assert extension("image/unheard-of") == "img"


def test_the_latest_and_a_bounded_ring_of_earlier_different_screens(tmp_path: Path) -> None:
    screen = Screen()
    rec = recorder(tmp_path, screen, keep=3)
    for number in range(6):
        screen.picture = f"P6 screen {number}".encode()
        assert rec.take(DOMAIN) == tmp_path / "screens" / "latest.ppm"
    files = {p.name: p.read_bytes() for p in (tmp_path / "screens").iterdir()}
    assert files == {"latest.ppm": b"P6 screen 5", "previous-1.ppm": b"P6 screen 4",
                     "previous-2.ppm": b"P6 screen 3"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (tmp_path / "screens").iterdir())
    assert stat.S_IMODE((tmp_path / "screens").stat().st_mode) == 0o700


def test_the_same_screen_again_does_not_push_earlier_ones_out(tmp_path: Path) -> None:
    screen = Screen()
    rec = recorder(tmp_path, screen, keep=3)
    screen.picture = b"P6 first"
    rec.take(DOMAIN)
    screen.picture = b"P6 prompt"
    for _ in range(5):
        rec.take(DOMAIN)
    assert (tmp_path / "screens" / "previous-1.ppm").read_bytes() == b"P6 first"
    assert sorted(p.name for p in (tmp_path / "screens").iterdir()) == [
        "latest.ppm", "previous-1.ppm"]


def test_a_failing_screenshot_is_noted_not_raised(tmp_path: Path) -> None:
    screen = Screen()
    rec = recorder(tmp_path, screen)
    libvirt.virResetLastError()  # else the error says the last one libvirt set, anywhere
    screen.fail = libvirt.libvirtError("Requested operation is not valid: domain is not running")
    assert rec.take(DOMAIN) is None
    assert rec.where() == "no screenshot (libvirtError: Requested operation is not valid: " \
                          "domain is not running)"
    screen.fail = None
    rec.take(DOMAIN)
    screen.fail = OSError(28, "No space left on device")
    assert rec.take(DOMAIN) is None
    screen.fail = TypeError("a binding that returned None for the MIME type")
    assert rec.take(DOMAIN) is None
    assert rec.where() == f"last screenshot: {tmp_path / 'screens' / 'latest.ppm'}"


def test_unchanged_for_counts_from_the_last_screen_not_seen_recently(tmp_path: Path) -> None:
    """A blinking caret alternates two pictures: that is no progress."""
    screen = Screen()
    rec = recorder(tmp_path, screen)
    assert rec.unchanged_for() is None
    screen.picture = b"P6 copying files 10%"
    rec.take(DOMAIN)
    screen.now = 60.0
    screen.picture = b"P6 product key, caret on"
    rec.take(DOMAIN)
    for second in range(70, 700, 10):
        screen.now = float(second)
        screen.picture = b"P6 product key, caret off" if second % 20 else b"P6 product key, " \
                                                                          b"caret on"
        rec.take(DOMAIN)
    assert rec.unchanged_for() == pytest.approx(690 - 70)
    screen.picture = b"P6 copying files 11%"
    rec.take(DOMAIN)
    assert rec.unchanged_for() == 0


def test_latest_screenshot_finds_the_latest_file(tmp_path: Path) -> None:
    assert latest_screenshot(tmp_path / "screens") is None
    screen = Screen("image/png")
    recorder(tmp_path, screen).take(DOMAIN)
    assert latest_screenshot(tmp_path / "screens") == tmp_path / "screens" / "latest.png"
