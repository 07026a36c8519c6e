"""An L1's disk layers (nestlab/virt/layers.py) with the real qemu-img: chains stay valid,
frozen layers are never written, cut-short freezes are finished, nothing is copied."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from nestlab.build.images import BuiltImage
from nestlab.errors import InputError, NestlabError
from nestlab.host.check import check_host
from nestlab.plan import HostPlan, make_plan
from nestlab.virt import disks, layers
from tests.conftest import example, facts

MiB = 1024 * 1024


@pytest.fixture
def host(tmp_path: Path) -> HostPlan:
    lab = example("linux-nested")
    plan = make_plan(lab, check_host(facts("amd-nested-1"), lab).decide(lab.name),
                     tmp_path / "lab")
    return plan.hosts[0]


@pytest.fixture
def base(tmp_path: Path) -> BuiltImage:
    disk = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    write(disk, 0, b"B" * 4096)
    return BuiltImage(name="debian-12", key="k", path=tmp_path, kernel=tmp_path / "k",
                      initrd=tmp_path / "i", disk=disk, size=1, seconds=0.0, built="x")


def write(image: Path, offset: int, data: bytes) -> None:
    """What a running guest does to its disk: qemu-io writes through the whole chain."""
    pattern = data[0]
    subprocess.run(["qemu-io", "-f", "qcow2", "-c",
                    f"write -P {pattern} {offset} {len(data)}", str(image)],
                   check=True, capture_output=True)


def reads(image: Path, offset: int, byte: int) -> bool:
    result = subprocess.run(["qemu-io", "-r", "-f", "qcow2", "-c",
                             f"read -P {byte} {offset} 4096", str(image)],
                            capture_output=True, text=True, check=False)
    return result.returncode == 0 and "Pattern verification failed" not in result.stdout


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def make_disk(host: HostPlan, base: BuiltImage) -> None:
    disks.ensure_host_dir(host, 0o711)
    assert disks.ensure_overlay(host, base)


def test_a_baseline_keeps_the_disk_and_reset_throws_the_top_away(
        host: HostPlan, base: BuiltImage) -> None:
    make_disk(host, base)
    write(host.disk_path, 0, b"\x01" * 4096)  # provisioned by `up`
    inode = host.disk_path.stat().st_ino
    layers.freeze_top(host, layers.baseline_path(host))
    baseline = layers.baseline_path(host)
    assert baseline.stat().st_ino == inode  # the same file, not a copy
    assert baseline.stat().st_mode & 0o777 == 0o400
    assert layers.has_baseline(host)
    assert layers.backing_file(host.disk_path) == baseline
    kept = fingerprint(baseline)
    write(host.disk_path, 0, b"\x02" * 4096)  # a student's change
    assert reads(host.disk_path, 0, 2)
    layers.new_top(host, baseline)  # reset
    assert reads(host.disk_path, 0, 1) and reads(host.disk_path, 8192, 0)
    assert fingerprint(baseline) == kept  # never written
    assert layers.backing_file(baseline) == base.disk


def test_a_new_top_is_under_1_mib_whatever_the_layer_under_it_holds(
        host: HostPlan, base: BuiltImage) -> None:
    make_disk(host, base)
    write(host.disk_path, 0, b"\x05" * (8 * MiB))
    layers.freeze_top(host, layers.baseline_path(host))
    assert layers.layer_file(layers.baseline_path(host)).bytes_on_disk >= 8 * MiB
    assert layers.layer_file(host.disk_path).bytes_on_disk <= MiB


def test_snapshots_chain_and_restore_brings_back_what_was_saved(
        host: HostPlan, base: BuiltImage) -> None:
    make_disk(host, base)
    layers.freeze_top(host, layers.baseline_path(host))
    write(host.disk_path, 0, b"\x03" * 4096)
    first = layers.snapshot_path(host, "step-1")
    layers.freeze_top(host, first)
    write(host.disk_path, 4096, b"\x04" * 4096)
    second = layers.snapshot_path(host, "step_2")
    layers.freeze_top(host, second)
    assert layers.snapshot_names(host) == ["step-1", "step_2"]
    assert layers.backing_file(second) == first
    kept = {p: fingerprint(p) for p in (first, second, layers.baseline_path(host))}
    layers.new_top(host, layers.baseline_path(host))  # reset: both changes gone
    assert reads(host.disk_path, 0, ord("B")) and reads(host.disk_path, 4096, 0)
    layers.new_top(host, first)  # restore step-1: the first change only
    assert reads(host.disk_path, 0, 3) and reads(host.disk_path, 4096, 0)
    write(host.disk_path, 0, b"\x09" * 4096)
    layers.new_top(host, second)
    assert reads(host.disk_path, 0, 3) and reads(host.disk_path, 4096, 4)
    assert {p: fingerprint(p) for p in kept} == kept


def test_a_layer_something_is_backed_by_is_not_deleted(
        host: HostPlan, base: BuiltImage) -> None:
    make_disk(host, base)
    layers.freeze_top(host, layers.baseline_path(host))
    layers.freeze_top(host, layers.snapshot_path(host, "a"))
    layers.freeze_top(host, layers.snapshot_path(host, "b"))
    with pytest.raises(layers.LayerInUse, match="snapshot a is the layer under snapshot b"):
        layers.remove_snapshot_layer(host, "a")
    with pytest.raises(layers.LayerInUse, match="under its current disk"):
        layers.remove_snapshot_layer(host, "b")
    layers.new_top(host, layers.baseline_path(host))
    assert layers.remove_snapshot_layer(host, "b")
    assert layers.remove_snapshot_layer(host, "a")
    assert not layers.remove_snapshot_layer(host, "a")
    assert layers.snapshot_names(host) == []


def test_a_freeze_cut_after_the_link_is_finished_before_the_l1_runs(
        host: HostPlan, base: BuiltImage) -> None:
    make_disk(host, base)
    os.link(host.disk_path, layers.baseline_path(host))  # the crash: no new top yet
    assert not layers.has_baseline(host)
    assert disks.ensure_overlay(host, base)  # up's disk step finishes it
    assert layers.has_baseline(host)
    assert layers.backing_file(host.disk_path) == layers.baseline_path(host)
    assert not disks.ensure_overlay(host, base)


def test_a_missing_top_is_made_on_the_baseline_not_the_base_image(
        host: HostPlan, base: BuiltImage) -> None:
    make_disk(host, base)
    layers.freeze_top(host, layers.baseline_path(host))
    host.disk_path.unlink()
    assert disks.ensure_overlay(host, base)
    assert layers.backing_file(host.disk_path) == layers.baseline_path(host)


def test_an_existing_other_layer_is_never_overwritten(host: HostPlan, base: BuiltImage) -> None:
    make_disk(host, base)
    layers.freeze_top(host, layers.snapshot_path(host, "a"))
    with pytest.raises(NestlabError, match="exists already"):
        layers.freeze_top(host, layers.snapshot_path(host, "a"))


def test_rebuild_removes_the_layers_of_the_old_l1(host: HostPlan, base: BuiltImage) -> None:
    make_disk(host, base)
    layers.freeze_top(host, layers.baseline_path(host))
    layers.freeze_top(host, layers.snapshot_path(host, "a"))
    removed = disks.remove_rebuild_files(host)
    assert layers.baseline_path(host) in removed and layers.snapshot_path(host, "a") in removed
    assert disks.ensure_overlay(host, base)
    assert layers.backing_file(host.disk_path) == base.disk


@pytest.mark.parametrize("name", ["", "a/b", "..", "-x", "a b", "x" * 41, "é"])
def test_bad_snapshot_names_are_input_errors(name: str) -> None:
    with pytest.raises(InputError, match="not a snapshot name"):
        layers.check_snapshot_name(name)
