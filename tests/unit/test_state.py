"""A lab's lock and event log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nestlab.progress import Reporter
from nestlab.state.record import LabBusy, lab_lock, last_run, last_work, read_events


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


def step(run: str, guest: str, phase: str, outcome: str, command: str = "up") -> dict[str, Any]:
    return {"run": run, "command": command, "guest": guest, "phase": phase, "outcome": outcome,
            "seconds": 1.0}


def shown(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["guest"], e["phase"], e["run"]) for e in last_work(events)]


def test_a_run_that_did_nothing_keeps_the_times_of_the_one_that_did() -> None:
    boot = [step("r1", "kvm1", "define + start", "changed"), step("r1", "kvm1", "ssh", "ok"),
            step("r1", "kvm1", "libvirt in L1", "changed"), step("r1", "L0", "image", "ok")]
    noop = [step("r2", e["guest"], e["phase"], "ok") for e in boot]
    assert shown(boot + noop) == [("kvm1", "define + start", "r1"), ("kvm1", "ssh", "r1"),
                                  ("kvm1", "libvirt in L1", "r1"), ("L0", "image", "r2")]


def test_a_failed_step_shows_until_a_later_run_does_the_work() -> None:
    failed = [step("r1", "kvm1", "define + start", "changed"),
              step("r1", "kvm1", "ssh", "failed: Unreachable")]
    assert shown(failed) == [("kvm1", "define + start", "r1"), ("kvm1", "ssh", "r1")]
    booted = [step("r2", "kvm1", "define + start", "ok"), step("r2", "kvm1", "ssh", "ok"),
              step("r2", "kvm1", "libvirt in L1", "changed")]
    assert shown(failed + booted) == [("kvm1", "define + start", "r1"), ("kvm1", "ssh", "r2"),
                                      ("kvm1", "libvirt in L1", "r2")]


def test_only_runs_since_the_last_down_count() -> None:
    before = [step("r1", "kvm1", "disk", "changed"), step("r1", "old", "disk", "changed")]
    after = [step("r3", "kvm1", "disk", "ok")]
    events = [*before, step("r2", "L0", "remove L1s and networks", "ok", "down"), *after]
    assert shown(events) == [("kvm1", "disk", "r3")]
