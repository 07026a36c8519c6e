"""Progress as a user sees it: timed lines on a terminal, timestamped lines in a pipe or a
log (CI, tee), nothing with --quiet; never on stdout."""

from __future__ import annotations

import io
import re
from pathlib import Path

from nestlab.progress import ProgressLines, Reporter

STAMPED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ kvm1: ")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_one_timestamped_line_per_event(tmp_path: Path) -> None:
    stream = io.StringIO()
    reporter = Reporter("lab", tmp_path, "up", lines=ProgressLines(stream=stream))
    with reporter.phase("kvm1", "ssh"):
        reporter.say("kvm1", "waiting for SSH (Connection refused)")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert all(STAMPED.match(line) for line in lines), lines
    assert [STAMPED.sub("", line) for line in lines] == [
        "ssh ...", "waiting for SSH (Connection refused)", "ssh ok in 0.0s"]
    assert "\r" not in stream.getvalue()


def test_a_terminal_gets_seconds_since_the_start(tmp_path: Path) -> None:
    stream = Terminal()
    reporter = Reporter("lab", tmp_path, "up", lines=ProgressLines(stream=stream))
    reporter.say("kvm1", "disk ...")
    assert re.fullmatch(r"\[ +\d+\.\ds\] kvm1: disk \.\.\.\n", stream.getvalue())


def test_a_failed_step_is_shown_too(tmp_path: Path) -> None:
    stream = io.StringIO()
    reporter = Reporter("lab", tmp_path, "up", lines=ProgressLines(stream=stream))
    try:
        with reporter.phase("kvm1", "ssh"):
            raise TimeoutError
    except TimeoutError:
        pass
    assert stream.getvalue().splitlines()[-1].endswith("kvm1: ssh failed: TimeoutError in 0.0s")


def test_quiet_shows_nothing_and_still_records(tmp_path: Path) -> None:
    stream = io.StringIO()
    reporter = Reporter("lab", tmp_path, "up", lines=ProgressLines("quiet", stream=stream))
    with reporter.phase("kvm1", "disk"):
        pass
    assert stream.getvalue() == ""
    assert '"phase": "disk"' in (tmp_path / "events.jsonl").read_text()


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_reader_that_goes_away_ends_the_progress_not_the_command(tmp_path: Path) -> None:
    reporter = Reporter("lab", tmp_path, "up", lines=ProgressLines(stream=ClosedPipe()))
    with reporter.phase("kvm1", "disk"):
        pass
    assert reporter.counts()["ok"] == 1
    assert reporter.lines.style == "quiet"
