"""The Windows image build's wait: it follows setup's markers on the serial port and the
screen, and ends within minutes, with the reason, the step and the last screenshot,
when setup cannot succeed (a FAKE install: tests/fakes/winsetup.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nestlab import waiting
from nestlab.build import winimage
from nestlab.build.answerfile import render_install_answer
from nestlab.build.images import ImageBuildError
from nestlab.build.setupwatch import STALL, STEP_LIMIT, SetupWatch, parse_markers
from nestlab.lab.systems import OS
from nestlab.render import powershell_script
from nestlab.virt.screens import ScreenRecorder
from tests.fakes.winsetup import FakeInstall, Moment, installing, marker, prompt

DOMAIN = object()
HOURS_3 = 3 * 3600.0


def good_install() -> list[Moment]:
    return [*installing(15), Moment(b"getting ready 1", marker("specialize", "\r\n")),
            *installing(5, start=100), Moment(b"desktop", marker("first-logon")),
            Moment(b"desktop", marker("sysprep-start")), Moment(b"desktop"),
            Moment(b"desktop", marker("sysprep-done")), Moment(b"", running=False)]


class Build:
    """The build's wait (winimage._wait_until_off) over a FAKE install; its sleeps move
    the install on, so hours of setup take no time."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 moments: list[Moment], screenshots_fail: bool = False) -> None:
        self.install = FakeInstall(tmp_path / "serial.log", moments,
                                   screenshots_fail=screenshots_fail)
        self.heard: list[str] = []
        screens = ScreenRecorder(tmp_path / "screens", grab=self.install.grab,
                                 clock=self.install.clock)
        self.watch = SetupWatch(DOMAIN, self.install.serial_log, screens, self.heard.append,
                                self.install.is_active, clock=self.install.clock)
        monkeypatch.setattr(waiting, "_sleep", self.install.advance)

    def wait(self, timeout: float = HOURS_3) -> None:
        winimage._wait_until_off(self.watch, timeout, self.heard.append)

    def fails(self, timeout: float = HOURS_3) -> ImageBuildError:
        with pytest.raises(ImageBuildError) as info:
            self.wait(timeout)
        return info.value

    @property
    def minutes(self) -> float:
        return self.install.now / 60


def test_a_good_install_follows_the_markers_to_the_power_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = Build(tmp_path, monkeypatch, good_install())
    run.wait()
    assert [h for h in run.heard if h.startswith("setup: ")] == [
        "setup: specialize and OOBE, before the first logon", "setup: first logon: build.ps1 runs",
        "setup: sysprep generalizes", "setup: sysprep done: powering off"]
    assert run.install.at == len(run.install.moments) - 1
    assert (tmp_path / "screens" / "latest.png").read_bytes() == b"desktop"
    assert len(list((tmp_path / "screens").iterdir())) <= 5


def test_the_progress_line_names_the_step_and_the_latest_screenshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(winimage, "NOTE_EVERY", 0.0)
    run = Build(tmp_path, monkeypatch, good_install())
    run.wait()
    latest = tmp_path / "screens" / "latest.png"
    assert run.heard[0] == ("still installing: windowsPE: installing from the ISO (0 min); "
                            f"last screenshot: {latest}")
    assert f"still installing: first logon: build.ps1 runs (20 min); last screenshot: " \
           f"{latest}" in run.heard


def test_a_failed_sysprep_ends_the_build_at_once_with_setuperr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failed = (marker("setuperr: 2026-11-27 23:10:02, Error SYSPRP Package Microsoft.Foo was "
                     "installed for a user, but not provisioned for all users.")
              + marker("setuperr: 2026-11-27 23:10:02, Error SYSPRP Failed to remove apps")
              + marker("sysprep-failed: sysprep exited 0 and left the image state "
                       "IMAGE_STATE_COMPLETE"))
    moments = [*good_install()[:-3], Moment(b"sysprep error box", failed),
               *[Moment(b"desktop")] * 6 * 60 * 3]
    run = Build(tmp_path, monkeypatch, moments)
    error = run.fails()
    assert run.minutes < 25
    message = error.message
    assert message.startswith("Windows setup: sysprep failed: sysprep exited 0 and left the "
                              "image state IMAGE_STATE_COMPLETE; 2026-11-27 23:10:02, Error "
                              "SYSPRP Failed to remove apps (step: sysprep generalizes); ")
    assert message.endswith(f"last screenshot: {tmp_path / 'screens' / 'latest.png'}")
    assert (tmp_path / "screens" / "latest.png").read_bytes() == b"sysprep error box"
    hint = error.hint or ""
    assert "was installed for a user, but not provisioned for all users" in hint
    assert f"The serial log of the build is {tmp_path / 'serial.log'}" in hint


def test_setup_stuck_at_a_product_key_prompt_fails_in_minutes_with_a_guess(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    moments = [*installing(3), *prompt(3 * 60)]
    run = Build(tmp_path, monkeypatch, moments)
    message = run.fails().message
    assert re.fullmatch(
        r"Windows setup: no progress for 1[23] min: the screen shows nothing new and setup "
        r"has not logged on; probably waiting at a prompt such as the product key \(step: "
        r"windowsPE: installing from the ISO\); last screenshot: \S+/screens/latest\.png",
        message), message
    assert 3 + STALL / 60 <= run.minutes <= 3 + STALL / 60 + 1  # not the 3-hour timeout


def test_a_spinner_and_a_static_desktop_after_the_logon_are_not_a_prompt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spinner = [Moment(f"getting ready, frame {n % 200}".encode()) for n in range(6 * 40)]
    moments = [*installing(5), *spinner, Moment(b"desktop", marker("first-logon")),
               Moment(b"desktop", marker("sysprep-start")), *[Moment(b"desktop")] * 6 * 20,
               Moment(b"desktop", marker("sysprep-done")), Moment(b"", running=False)]
    Build(tmp_path, monkeypatch, moments).wait()


def test_a_step_after_the_logon_that_never_ends_fails_after_its_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    moments = [*installing(5), Moment(b"desktop", marker("first-logon")),
               Moment(b"desktop", marker("sysprep-start")), *[Moment(b"desktop")] * 6 * 180]
    error = Build(tmp_path, monkeypatch, moments).fails()
    assert error.message.startswith(f"Windows setup: no progress for {STEP_LIMIT / 60:.0f} min "
                                    "after the first logon (step: sysprep generalizes); "
                                    "last screenshot: ")


def test_a_power_off_before_sysprep_finished_is_no_image(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    moments = [*installing(5), Moment(b"desktop", marker("first-logon")),
               Moment(b"", running=False)]
    error = Build(tmp_path, monkeypatch, moments).fails()
    assert error.message.startswith("Windows setup: the install domain powered off before "
                                    "sysprep finished (step: first logon: build.ps1 runs); "
                                    "last screenshot: ")


def test_without_any_marker_the_power_off_is_taken_as_done_and_said_to_be_unconfirmed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = Build(tmp_path, monkeypatch, [*installing(30), Moment(b"", running=False)])
    run.wait()
    assert any("sysprep's success is not confirmed" in h for h in run.heard)


def test_screenshots_that_fail_never_fail_the_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nor can a still screen be judged then: only the markers and the timeout count."""
    moments = [*installing(3), *prompt(60), *good_install()[-6:]]
    Build(tmp_path, monkeypatch, moments, screenshots_fail=True).wait()


def test_a_timeout_ends_with_the_step_and_the_last_screenshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = Build(tmp_path, monkeypatch, installing(60)).fails(timeout=0)
    assert re.fullmatch(r"Windows setup: not done after 0 min \(step: windowsPE: installing "
                        r"from the ISO\); last screenshot: \S+/latest\.png", error.message)


def test_the_markers_the_guest_writes_are_the_ones_the_build_reads() -> None:
    """build.ps1's and the answer file's marker lines, as Windows would write them."""
    script = powershell_script("build")
    sent = re.findall(r"Send-Marker ['\"]([a-z-]+)", script)
    assert sent == ["first-logon", "sysprep-start", "setuperr", "sysprep-failed",
                    "sysprep-done"]
    answer = render_install_answer(OS.windows_server_2016, "standard", "S3cret-pw")
    echoed = re.findall(r"cmd /c echo (nestlab-build: [a-z-]+)&gt;COM1", answer)
    assert echoed == ["nestlab-build: specialize"]
    assert parse_markers(echoed[0] + "\r\n").last == "specialize"
    for step in ("first-logon", "sysprep-start", "sysprep-done"):
        assert parse_markers(marker(step)).last == step


def test_markers_are_found_among_the_firmware_output_and_escaped() -> None:
    text = ("\x1b[2J BdsDxe: booting\r\n" + marker("specialize", "\r\n")
            + "junk nestlab-build: setuperr: bad \x1b]0;title\x07 line\n"
            + marker("sysprep-failed: x"))
    found = parse_markers(text)
    assert found.last == "specialize" and found.failed == "x"
    assert found.setuperr == ("bad \\x1b]0;title\\x07 line",)
