"""A classroom for real: two seats of a small Linux lab, each in its own sandbox, brought
up in parallel with their baselines (each L1's memory kept); a student's files in seat
1's L1 and L2 are gone after `reset --seat 1` (a restore: nothing boots) while seat 2
keeps its own; a snapshot of seat 1 brings back a
change made before it; `down` takes every seat away with nothing left. The tests run
in order and share the two seats (each lab boot costs minutes on these machines).
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
L1_MARK = "/var/tmp/student-was-here"
# The prime runs from its initramfs: what lasts of it is its own disk (a qcow2 inside the
# L1's disk), whose start holds its host key. The L2's marker is written onto that disk,
# far from the key (busybox dd), as a student's work on it would be.
L2_DISK = ("$(for d in /sys/block/vd* /sys/block/sd*; do [ -e $d ] && echo /dev/${d##*/} "
           "&& break; done)")
L2_OFFSET = {"": 64 << 20, "-saved": (64 << 20) + 4096, "-lost": (64 << 20) + 8192}


def netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def lab_file(tmp_path_factory: pytest.TempPathFactory, nestlab_home: Path,
             nestlab: Nestlab) -> Iterator[str]:
    """The lab file; whatever happens to the tests, every seat is taken down."""
    path = tmp_path_factory.mktemp("seats") / "seats.yaml"
    path.write_text(LAB_TEXT)
    yield str(path)
    if any((nestlab_home / "labs" / seat).exists() for seat in SEAT_LABS):
        nestlab("down", "-f", str(path), "--purge", timeout=600)
    assert not any(f"nestlab-{seat}" in netns_list() for seat in SEAT_LABS)


def run_in(nestlab: Nestlab, lab_file: str, seat: int, guest: str,
           *argv: str) -> subprocess.CompletedProcess[str]:
    return nestlab("exec", "-f", lab_file, "--seat", str(seat), guest, "--", *argv,
                   timeout=120)


def marked(nestlab: Nestlab, lab_file: str, seat: int, suffix: str = "") -> tuple[bool, bool]:
    """Whether the student's marker is in the seat's L1 and in its L2."""
    word = f"student{suffix}"
    read = (f"dd if={L2_DISK} bs=1 skip={L2_OFFSET[suffix]} count={len(word)} 2>/dev/null "
            f"| grep -q {word}")
    return (run_in(nestlab, lab_file, seat, "kvm1", "test", "-e",
                   L1_MARK + suffix).returncode == 0,
            run_in(nestlab, lab_file, seat, "prime1", "sh", "-c", read).returncode == 0)


def mark(nestlab: Nestlab, lab_file: str, seat: int, suffix: str = "") -> None:
    word = f"student{suffix}"
    writes = {"kvm1": f"echo {word} > {L1_MARK}{suffix} && sync",
              "prime1": f"printf {word} | dd of={L2_DISK} bs=1 seek={L2_OFFSET[suffix]} "
                        "conv=notrunc 2>/dev/null && sync"}
    for guest, line in writes.items():
        result = run_in(nestlab, lab_file, seat, guest, "sh", "-c", line)
        assert result.returncode == 0, result.stderr
    assert marked(nestlab, lab_file, seat, suffix) == (True, True)


def test_two_seats_come_up_in_parallel_with_their_baselines(
        nestlab: Nestlab, images: None, lab_file: str, nestlab_home: Path) -> None:
    result = nestlab.ok("up", "--sandbox", "--baseline", "-f", lab_file, "--json",
                        timeout=2400)
    out = json.loads(result.stdout)
    assert out["failed"] == 0
    assert [(s["lab"], s["outcome"], [p["guest"] for p in s["proofs"]])
            for s in out["seats"]] == [("seats-s01", "up", ["prime1"]),
                                       ("seats-s02", "up", ["prime1"])]
    assert "seats-s02 kvm1:" in result.stderr  # progress names each seat
    for seat in SEAT_LABS:
        assert f"nestlab-{seat}" in netns_list()
        kept = nestlab_home / "labs" / seat / "hosts" / "kvm1"
        assert (kept / "baseline.qcow2").exists()
        assert (kept / "baseline.state").stat().st_mode & 0o777 == 0o600  # its memory
    keys = {(nestlab_home / "labs" / seat / "keys" / "id_ed25519").read_bytes()
            for seat in SEAT_LABS}
    assert len(keys) == 2  # a key pair per seat

    rows = json.loads(nestlab.ok("status", "-f", lab_file, "--json").stdout)["seats"]
    assert [(r["lab"], r["state"], r["l1s"], r["l2s"]) for r in rows] == [
        (seat, "up", {"running": 1, "total": 1}, {"running": 1, "total": 1})
        for seat in SEAT_LABS]
    second = json.loads(nestlab.ok("status", "-f", lab_file, "--seat", "2",
                                   "--json").stdout)
    assert second["lab"] == "seats-s02"
    assert second["hosts"][0]["address"] == "10.79.1.10"  # seat 2: the next /24


def test_reset_of_seat_1_removes_its_students_files_and_leaves_seat_2_alone(
        nestlab: Nestlab, lab_file: str, nestlab_home: Path) -> None:
    baseline = nestlab_home / "labs" / "seats-s01" / "hosts" / "kvm1" / "baseline.qcow2"
    before = baseline.stat().st_mtime_ns
    mark(nestlab, lab_file, 1)
    mark(nestlab, lab_file, 2)
    result = json.loads(nestlab.ok("reset", "-f", lab_file, "--seat", "1", "--json",
                                   timeout=1200).stdout)
    assert [p["guest"] for p in result["proofs"]] == ["prime1"]
    assert marked(nestlab, lab_file, 1) == (False, False)
    assert marked(nestlab, lab_file, 2) == (True, True)
    assert baseline.stat().st_mtime_ns == before  # the baseline is never written
    changed = {t["phase"] for t in result["timings"] if t["outcome"] == "changed"}
    assert not changed & {"L2 network", "L2 image prime"}  # nothing provisioned again
    assert "memory restored" in changed  # the L1 was restored, not booted,
    assert not changed & {"define + start", "define + start in kvm1"}  # nor its L2


def test_a_snapshot_of_seat_1_brings_back_a_change_made_before_it(
        nestlab: Nestlab, lab_file: str) -> None:
    mark(nestlab, lab_file, 1, "-saved")
    nestlab.ok("snapshot", "save", "-f", lab_file, "--seat", "1", "step1", timeout=1200)
    assert marked(nestlab, lab_file, 1, "-saved") == (True, True)
    mark(nestlab, lab_file, 1, "-lost")
    nestlab.ok("snapshot", "restore", "-f", lab_file, "--seat", "1", "step1", timeout=1200)
    assert marked(nestlab, lab_file, 1, "-saved") == (True, True)
    assert marked(nestlab, lab_file, 1, "-lost") == (False, False)
    listed = json.loads(nestlab.ok("snapshot", "list", "-f", lab_file, "--seat", "1",
                                   "--json").stdout)
    assert [(s["name"], s["missing"]) for s in listed] == [("step1", [])]
    assert listed[0]["bytes_on_disk"] > 0


def test_down_of_every_seat_leaves_nothing(nestlab: Nestlab, lab_file: str,
                                           nestlab_home: Path) -> None:
    out = json.loads(nestlab.ok("down", "-f", lab_file, "--purge", "--json", "-q",
                                timeout=600).stdout)
    assert out["failed"] == 0
    assert [(s["lab"], s["result"]["purged"]) for s in out["seats"]] == [
        (seat, True) for seat in SEAT_LABS]
    assert not any(f"nestlab-{seat}" in netns_list() for seat in SEAT_LABS)
    leftovers = subprocess.run(["pgrep", "-af", "nestlab-seats-s0"], capture_output=True,
                               text=True, check=False).stdout
    assert leftovers == ""
    assert not any((nestlab_home / "labs" / seat).exists() for seat in SEAT_LABS)
