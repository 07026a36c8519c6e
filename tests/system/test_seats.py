"""Two seats of a small Linux lab for real, each in its own sandbox: brought up in
parallel, each proven, each with its own network range, and taken down with nothing
left. The tests run in order and share the two seats.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.conftest import Nestlab

pytestmark = pytest.mark.system

LAB = "seats"
SEAT_LABS = ("seats-s01", "seats-s02")
LAB_TEXT = """\
lab: seats
seats: 2
networks:
  - name: lab
    cidr: 10.79.0.0/24
hosts:
  - name: kvm1
    os: debian-12
    memory: 1GiB
    disk: 8GiB
    networks: [lab]
    guests:
      - name: prime1
        memory: 256MiB
        disk: 256MiB
"""


def netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                          check=True).stdout


def qemu_of_seats() -> str:
    """QEMU processes of either seat (their command lines name the seat's domains)."""
    return subprocess.run(["pgrep", "-af", "qemu-system.*nestlab-seats-s0"],
                          capture_output=True, text=True, check=False).stdout


@pytest.fixture(scope="module")
def lab_file(tmp_path_factory: pytest.TempPathFactory, nestlab_home: Path,
             nestlab: Nestlab) -> Iterator[Path]:
    """The lab file; whatever happens to the tests, every seat is taken down."""
    path = tmp_path_factory.mktemp("seats") / "seats.yaml"
    path.write_text(LAB_TEXT)
    yield path
    if any((nestlab_home / "labs" / seat).exists() for seat in SEAT_LABS):
        nestlab("down", "-f", str(path), "--purge", timeout=600)
    assert not any(f"nestlab-{seat}" in netns_list() for seat in SEAT_LABS)


def test_two_seats_come_up_each_in_its_own_sandbox(nestlab: Nestlab, images: None,
                                                   lab_file: Path, nestlab_home: Path) -> None:
    result = nestlab.ok("up", "--sandbox", "-f", str(lab_file), "--json", timeout=2400)
    out = json.loads(result.stdout)
    assert out["failed"] == 0
    assert [(s["lab"], s["outcome"], [p["guest"] for p in s["proofs"]])
            for s in out["seats"]] == [("seats-s01", "up", ["prime1"]),
                                       ("seats-s02", "up", ["prime1"])]
    assert "seats-s02 kvm1:" in result.stderr  # progress names each seat
    for seat in SEAT_LABS:
        assert f"nestlab-{seat}" in netns_list()
    keys = {(nestlab_home / "labs" / seat / "keys" / "id_ed25519").read_bytes()
            for seat in SEAT_LABS}
    assert len(keys) == 2

    rows = json.loads(nestlab.ok("status", "-f", str(lab_file), "--json").stdout)["seats"]
    assert [(r["lab"], r["state"], r["l1s"], r["l2s"]) for r in rows] == [
        (seat, "up", {"running": 1, "total": 1}, {"running": 1, "total": 1})
        for seat in SEAT_LABS]
    second = json.loads(nestlab.ok("status", "-f", str(lab_file), "--seat", "2",
                                   "--json").stdout)
    assert second["lab"] == "seats-s02"
    assert second["hosts"][0]["address"] == "10.79.1.10"  # seat 2: the next /24
    assert second["networks"] == [{"name": "nestlab-seats-s02-lab", "state": "active"}]
    uname = nestlab.ok("exec", "-f", str(lab_file), "--seat", "2", "prime1", "--",
                       "uname", "-n")
    assert uname.stdout.strip() == "prime1"


def test_up_again_changes_nothing_in_either_seat(nestlab: Nestlab, lab_file: Path) -> None:
    out = json.loads(nestlab.ok("up", "--sandbox", "-f", str(lab_file), "--json", "-q",
                                timeout=900).stdout)
    assert [(s["outcome"], s["counts"]["changed"], s["counts"]["failed"])
            for s in out["seats"]] == [("up", 0, 0), ("up", 0, 0)]


def test_down_of_every_seat_leaves_nothing(nestlab: Nestlab, lab_file: Path,
                                           nestlab_home: Path) -> None:
    out = json.loads(nestlab.ok("down", "-f", str(lab_file), "--purge", "--json", "-q",
                                timeout=600).stdout)
    assert out["failed"] == 0
    assert [(s["lab"], s["result"]["purged"]) for s in out["seats"]] == [
        (seat, True) for seat in SEAT_LABS]
    assert not any(f"nestlab-{seat}" in netns_list() for seat in SEAT_LABS)
    assert qemu_of_seats() == ""
    assert not any((nestlab_home / "labs" / seat).exists() for seat in SEAT_LABS)
    status = nestlab("status", "-f", str(lab_file), "--json")
    assert [r["state"] for r in json.loads(status.stdout)["seats"]] == ["down", "down"]
