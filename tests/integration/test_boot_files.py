"""An L1's kernel and initrd on L0 are links to the cached image's files, so an extra L1
costs no copy of them; a copy where no link can be made (the lab on libvirt's test
driver, FAKE guests)."""

from __future__ import annotations

import errno
import filecmp
from pathlib import Path

import libvirt
import pytest

from nestlab.build.images import find_image, l1_sums
from nestlab.virt import disks
from tests.fakes.linux import FakeLinuxL1
from tests.integration.conftest import LAB_FILE, bring_up


def boot_files(home: Path) -> tuple[Path, Path]:
    folder = home / "labs" / "linux-nested" / "hosts" / "kvm1"
    return folder / "vmlinuz", folder / "initrd.img"


def test_an_l1s_kernel_and_initrd_are_the_images_own_files(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    bring_up(LAB_FILE, home)
    image = find_image("debian-12")
    assert image is not None
    kernel, initrd = boot_files(home)
    assert kernel.samefile(image.boot_files()[0]) and initrd.samefile(image.boot_files()[1])
    _proofs, again = bring_up(LAB_FILE, home)
    assert [t["outcome"] for t in again.timings if t["phase"] == "disk"] == ["ok"]


def test_where_no_link_can_be_made_they_are_copies(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(_source: object, _target: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(disks.os, "link", refused)
    bring_up(LAB_FILE, home)
    image = find_image("debian-12")
    assert image is not None
    for copy, source in zip(boot_files(home), image.boot_files(), strict=True):
        assert not copy.samefile(source) and filecmp.cmp(copy, source, shallow=False)
        assert not copy.with_name(copy.name + ".partial").exists()
    _proofs, again = bring_up(LAB_FILE, home)
    assert [t["outcome"] for t in again.timings if t["phase"] == "disk"] == ["ok"]


def l2_kernel(l1: FakeLinuxL1) -> bytes:
    return l1.files["/var/lib/nestlab/images/prime/vmlinuz"]


def test_an_l2s_kernel_is_copied_compressed_and_unpacked_in_the_l1(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    bring_up(LAB_FILE, home)
    image = find_image("prime")
    assert image is not None and image.vmlinux and image.vmlinux_zst
    l1 = guests["kvm1"]
    assert l2_kernel(l1) == image.vmlinux.read_bytes()  # what the L2's <kernel> names
    assert l1.files["/var/lib/nestlab/images/prime/vmlinux.zst"] == image.vmlinux_zst.read_bytes()
    assert not [f for f in l1.files if f.endswith(".new")]
    l1.calls.clear()
    _proofs, again = bring_up(LAB_FILE, home)
    assert [t["outcome"] for t in again.timings if t["phase"] == "L2 image prime"] == ["ok"]
    assert not [c for c in l1.calls if c.startswith("put")]


def test_an_l1_of_an_older_nestlab_or_a_copy_cut_short_gets_the_kernel_again(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    """An L1 whose L2 kernel is the bzImage (no vmlinux.zst next to it), or where `up`
    stopped after the copy and before the unpack (only vmlinux.zst.new)."""
    bring_up(LAB_FILE, home)
    image = find_image("prime")
    assert image is not None and image.vmlinux
    l1 = guests["kvm1"]
    zst = "/var/lib/nestlab/images/prime/vmlinux.zst"
    for leftover in ({}, {f"{zst}.new": l1.files[zst]}):
        l1.files["/var/lib/nestlab/images/prime/vmlinuz"] = b"bzImage of an older nestlab"
        del l1.files[zst]
        l1.files.update(leftover)
        _proofs, again = bring_up(LAB_FILE, home)
        assert [t["outcome"] for t in again.timings
                if t["phase"] == "L2 image prime"] == ["changed"]
        assert l2_kernel(l1) == image.vmlinux.read_bytes() and zst in l1.files


SUMS = "/var/lib/nestlab/images/prime/SHA256SUMS"


def l2_image_outcome(report: object) -> list[str]:
    return [t["outcome"] for t in report.timings  # type: ignore[attr-defined]
            if t["phase"] == "L2 image prime"]


def test_the_l2_image_is_known_by_its_list_of_hashes_and_hashed_when_it_is_missing(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    """Hashing the image's 12 MB took ~0.35 s of an emulated L1 at every `up`; the list
    (written after the files, by `up` or by the L1's image build) is read instead. An L1
    without it (an image of an older nestlab) has its files hashed once, and the list
    written."""
    bring_up(LAB_FILE, home)
    l1 = guests["kvm1"]
    image = find_image("prime")
    assert image is not None
    assert l1.files[SUMS].decode() == l1_sums(image)
    del l1.files[SUMS]
    l1.calls.clear()
    _proofs, again = bring_up(LAB_FILE, home)
    assert l2_image_outcome(again) == ["changed"]
    assert not [c for c in l1.calls if c.startswith("put") and not c.endswith(SUMS)]
    assert SUMS in l1.files
    l1.calls.clear()
    _proofs, third = bring_up(LAB_FILE, home)
    assert l2_image_outcome(third) == ["ok"]
    assert not [c for c in l1.calls if c.startswith("sha256sum")]


def test_a_file_written_after_the_list_is_hashed_and_copied_again(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    bring_up(LAB_FILE, home)
    l1 = guests["kvm1"]
    image = find_image("prime")
    assert image is not None and image.vmlinux_zst
    zst = "/var/lib/nestlab/images/prime/vmlinux.zst"
    l1.files[zst] = b"changed in the L1"
    l1.written[zst] = l1.tick()  # after the list
    _proofs, again = bring_up(LAB_FILE, home)
    assert l2_image_outcome(again) == ["changed"]
    assert l1.files[zst] == image.vmlinux_zst.read_bytes()
    assert l1.written[SUMS] > l1.written[zst]  # the list written again, after the copy
