"""A lab's record and its recorded status read back as typed, frozen objects: what was
written comes back equal, and a damaged file names the key that is wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from nestlab.files import FileProblem
from nestlab.state.dataclass_json import dataclass_from_json
from nestlab.state.record import LabRecord, load_record, save_record
from nestlab.state.seen import L1Seen, L2Seen, LabSeen, NetworkSeen, SandboxSeen

SEEN = LabSeen(
    lab="demo", accel="tcg", uri="test:///default", sandbox=SandboxSeen("nestlab-demo", True),
    networks=(NetworkSeen("nestlab-demo-lab", "active"),),
    hosts=(L1Seen(name="kvm1", domain="nestlab-demo-kvm1", os="debian-12", state="running",
                  address="10.80.0.10",
                  guests=(L2Seen("prime1", "nestlab-demo-prime1", "192.168.100.10", "running"),)),
           L1Seen(name="kvm2", domain="nestlab-demo-kvm2", os="debian-12", state="shut off",
                  address=None, guests=(), note="not running")),
    at=1_790_000_000.125, by="status")


def as_written() -> dict[str, Any]:
    """SEEN as ``save_seen`` writes it and ``json.loads`` reads it back."""
    written: dict[str, Any] = json.loads(json.dumps(asdict(SEEN)))
    return written


def test_what_was_written_comes_back_equal() -> None:
    assert dataclass_from_json(LabSeen, as_written()) == SEEN


def test_a_missing_field_with_a_default_takes_it_and_unknown_keys_are_ignored() -> None:
    written = as_written()
    del written["node"], written["unanswered"]
    written["from_a_later_nestlab"] = 1
    assert dataclass_from_json(LabSeen, written) == SEEN


def test_a_whole_number_is_a_float_but_true_is_no_number() -> None:
    assert dataclass_from_json(LabSeen, as_written() | {"at": 1_790_000_000}).at == 1.79e9
    with pytest.raises(ValueError, match=r"^at: expected a number, got bool$"):
        dataclass_from_json(LabSeen, as_written() | {"at": True})


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s["hosts"][0]["guests"][0].pop("state"), r"hosts\.0\.guests\.0\.state: missing"),
    (lambda s: s["hosts"][1].update(address=10), r"hosts\.1\.address: expected a string, got int"),
    (lambda s: s.update(networks={"lab": "active"}), r"networks: expected a list, got dict"),
    (lambda s: s.update(sandbox="yes"), r"sandbox: expected an object, got str"),
])
def test_a_damaged_field_is_named_by_its_key_path(
        change: Callable[[dict[str, Any]], object], message: str) -> None:
    written = as_written()
    change(written)
    with pytest.raises(ValueError, match=f"^{message}$"):
        dataclass_from_json(LabSeen, written)


def test_a_damaged_record_is_a_file_problem_naming_the_file_and_the_key(
        tmp_path: Path) -> None:
    record = LabRecord(lab="demo", lab_file="demo.yaml", uri="test:///default", sandbox=False,
                       netns=None)
    save_record(tmp_path, record)
    assert load_record(tmp_path) == record
    (tmp_path / "lab.json").write_text('{"lab": "demo", "lab_file": "demo.yaml", '
                                       '"uri": "test:///default", "sandbox": "no", '
                                       '"netns": null}')
    with pytest.raises(FileProblem, match=r"lab\.json: a damaged lab record: sandbox: "
                                          r"expected true or false, got str"):
        load_record(tmp_path)
