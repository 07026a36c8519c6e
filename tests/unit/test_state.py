"""A lab's lock and event log."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.progress import Reporter
from nestlab.state.record import LabBusy, lab_lock, last_run, read_events


def test_second_command_on_a_lab_is_refused(tmp_path: Path) -> None:
    with (lab_lock(tmp_path, "up"), pytest.raises(LabBusy, match="is busy: `nestlab up`"),
          lab_lock(tmp_path, "down")):
        pass
    with lab_lock(tmp_path, "down"):
        pass  # free again once the first is done


def test_phases_are_recorded_with_outcome(tmp_path: Path) -> None:
    reporter = Reporter("lab", tmp_path, "up", show=False)
    with reporter.phase("kvm1", "disk"):
        pass
    with pytest.raises(RuntimeError), reporter.phase("kvm1", "ssh"):
        raise RuntimeError("boom")
    events = read_events(tmp_path)
    assert [(e["guest"], e["phase"], e["outcome"]) for e in events] == [
        ("kvm1", "disk", "ok"), ("kvm1", "ssh", "failed: RuntimeError")]
    assert all(e["end"] >= e["start"] for e in events)
    later = Reporter("lab", tmp_path, "up", show=False)
    with later.phase("kvm1", "disk"):
        pass
    assert [e["run"] for e in last_run(read_events(tmp_path))] == [later.run]


def test_a_cut_line_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text('{"a": 1}\n{"b":')
    assert read_events(tmp_path) == [{"a": 1}]
