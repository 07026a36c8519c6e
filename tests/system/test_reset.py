"""Reset and snapshots for real, in a sandbox: a small Linux lab (one L1, one L2) brought
up with its baseline; files written in the L1 and in its L2 are gone after `reset`; a
change made before `snapshot save` is back after `snapshot restore`; `down` leaves no
domain, network, namespace, disk or snapshot. The tests run in order and share one lab.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.system.conftest import Nestlab

pytestmark = pytest.mark.system

LAB = "reset-lab"
NETNS = f"nestlab-{LAB}"
L1_MARK = "/var/tmp/student-was-here"
# The prime runs from its initramfs: what lasts of it is its own disk (a qcow2 inside the
# L1's disk), whose start holds its host key. The L2's marker is written onto that disk,
# far from the key (busybox dd), as a student's work on it would be.
L2_DISK = "$(for d in /sys/block/vd* /sys/block/sd*; do [ -e $d ] && echo /dev/${d##*/} && break; done)"
L2_OFFSET = {"": 64 << 20, "-saved": (64 << 20) + 4096, "-lost": (64 << 20) + 8192}


@pytest.fixture(scope="module")
def lab_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/linux-nested.yaml under another lab name (its own sandbox and folder)."""
    text = (EXAMPLES / "linux-nested.yaml").read_text()
    path = tmp_path_factory.mktemp("reset") / "nestlab.yaml"
    path.write_text(text.replace("lab: linux-nested", f"lab: {LAB}"))
    return path


@pytest.fixture(scope="module")
def lab_dir(nestlab_home: Path, nestlab: Nestlab) -> Iterator[Path]:
    """The lab's folder; whatever happens to the tests, the lab is taken down."""
    yield nestlab_home / "labs" / LAB
    if (nestlab_home / "labs" / LAB).exists():
        nestlab("down", "--lab", LAB, "--purge", timeout=300)


def run_in(nestlab: Nestlab, guest: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return nestlab("exec", "--lab", LAB, guest, "--", *argv, timeout=120)


def marked(nestlab: Nestlab, suffix: str = "") -> tuple[bool, bool]:
    word = f"student{suffix}"
    read = (f"dd if={L2_DISK} bs=1 skip={L2_OFFSET[suffix]} count={len(word)} 2>/dev/null "
            f"| grep -q {word}")
    return (run_in(nestlab, "kvm1", "test", "-e", L1_MARK + suffix).returncode == 0,
            run_in(nestlab, "prime1", "sh", "-c", read).returncode == 0)


def mark(nestlab: Nestlab, suffix: str = "") -> None:
    word = f"student{suffix}"
    writes = {"kvm1": f"echo {word} > {L1_MARK}{suffix} && sync",
              "prime1": f"printf {word} | dd of={L2_DISK} bs=1 seek={L2_OFFSET[suffix]} "
                        "conv=notrunc 2>/dev/null && sync"}
    for guest, line in writes.items():
        result = run_in(nestlab, guest, "sh", "-c", line)
        assert result.returncode == 0, result.stderr
    assert marked(nestlab, suffix) == (True, True)


def test_up_keeps_a_baseline_once_the_l2s_are_proven(
        nestlab: Nestlab, images: None, lab_file: Path, lab_dir: Path) -> None:
    up = json.loads(nestlab.ok("up", "--sandbox", "--baseline", "-f", str(lab_file), "--json",
                               timeout=2400).stdout)
    assert up["baseline"] == ["kvm1"]
    assert [p["guest"] for p in up["proofs"]] == ["prime1"]
    host_dir = lab_dir / "hosts" / "kvm1"
    assert (host_dir / "baseline.qcow2").stat().st_mode & 0o777 == 0o400
    info = json.loads(subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(host_dir / "disk.qcow2")],
        capture_output=True, text=True, check=True).stdout)
    assert info["full-backing-filename"] == str(host_dir / "baseline.qcow2")


def test_reset_removes_what_was_written_in_the_l1_and_its_l2(
        nestlab: Nestlab, lab_dir: Path) -> None:
    baseline = lab_dir / "hosts" / "kvm1" / "baseline.qcow2"
    before = baseline.stat().st_mtime_ns
    mark(nestlab)
    result = json.loads(nestlab.ok("reset", "--lab", LAB, "--json", timeout=1200).stdout)
    assert [p["guest"] for p in result["proofs"]] == ["prime1"]
    assert marked(nestlab) == (False, False)
    assert baseline.stat().st_mtime_ns == before  # never written
    changed = {t["phase"] for t in result["timings"] if t["outcome"] == "changed"}
    assert not changed & {"L2 network", "L2 image prime"}  # nothing provisioned again


def test_a_snapshot_brings_back_a_change_made_before_it(nestlab: Nestlab) -> None:
    mark(nestlab, "-saved")
    nestlab.ok("snapshot", "save", "--lab", LAB, "step1", timeout=1200)
    assert marked(nestlab, "-saved") == (True, True)
    mark(nestlab, "-lost")
    nestlab.ok("snapshot", "restore", "--lab", LAB, "step1", timeout=1200)
    assert marked(nestlab, "-saved") == (True, True)
    assert marked(nestlab, "-lost") == (False, False)
    listed = json.loads(nestlab.ok("snapshot", "list", "--lab", LAB, "--json").stdout)
    assert [(s["name"], s["missing"]) for s in listed] == [("step1", [])]
    assert listed[0]["bytes_on_disk"] > 0


def test_down_leaves_nothing(nestlab: Nestlab, lab_dir: Path) -> None:
    nestlab.ok("down", "--lab", LAB, timeout=600)
    assert not (lab_dir / "hosts").exists()
    assert NETNS not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                       text=True, check=True).stdout
    leftovers = subprocess.run(["pgrep", "-f", f"nestlab-{LAB}"], capture_output=True,
                               text=True, check=False).stdout
    assert leftovers == ""
