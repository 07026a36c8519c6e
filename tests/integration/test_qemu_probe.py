"""libvirt's QEMU probe (~4 s of an emulated L1's first define) learned on L0 from the
first L1 of an image and put into later ones before their first define. The FAKE L1's
libvirt probes as the real one does: at a define, when its record is missing or does not
fit its own QEMU (``qemu_caps``)."""

from __future__ import annotations

from pathlib import Path

import libvirt

from nestlab.build.images import find_image
from nestlab.progress import Reporter
from nestlab.provision.linux import QEMU_PROBE, learned_probe_path
from tests.fakes.linux import FakeLinuxL1
from tests.integration.conftest import LAB_FILE, bring_up

SEED, KEEP = "QEMU probe from L0", "QEMU probe kept on L0"


def learned() -> Path:
    image = find_image("debian-12")
    assert image is not None
    return learned_probe_path(image)


def outcome(report: Reporter, phase: str) -> str:
    [found] = [t["outcome"] for t in report.timings if t["phase"] == phase]
    return str(found)


def test_the_first_l1_of_an_image_teaches_l0_its_probe(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    _proofs, first = bring_up(LAB_FILE, home)
    l1 = guests["kvm1"]
    assert l1.probes == 1 and (outcome(first, SEED), outcome(first, KEEP)) == ("ok", "changed")
    assert learned().read_bytes() == l1.qemu_caps == l1.files[QEMU_PROBE]
    l1.calls.clear()
    _proofs, again = bring_up(LAB_FILE, home)  # a lab that is up: not a round trip more
    assert (outcome(again, SEED), outcome(again, KEEP)) == ("ok", "ok")
    asked = [c for c in l1.calls if QEMU_PROBE in c]
    assert asked == [f"test -s {QEMU_PROBE}"] and asked[0] in l1.batches[-1]
    assert l1.probes == 1


def test_a_later_l1_of_the_image_has_it_before_its_first_define(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    learned().parent.mkdir(parents=True)
    learned().write_bytes(FakeLinuxL1.qemu_caps)  # from an earlier L1, as the first test's
    _proofs, report = bring_up(LAB_FILE, home)
    l1 = guests["kvm1"]
    assert l1.probes == 0 and l1.files[QEMU_PROBE] == l1.qemu_caps
    assert (outcome(report, SEED), outcome(report, KEEP)) == ("changed", "ok")
    # Kept: told by its hash (a short answer), not by reading the file back (166 KB).
    assert f"sha256sum {QEMU_PROBE}" in l1.calls and f"cat {QEMU_PROBE}" not in l1.calls


def test_a_probe_that_does_not_fit_is_replaced_by_the_l1s_own(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    """L0's copy came from an L1 of another CPU, or before a kernel update on L0: libvirt
    finds it does not fit, probes again, and L0 keeps the new one."""
    learned().parent.mkdir(parents=True)
    learned().write_text("<qemuCaps>\n  <hostCPUSignature>another</hostCPUSignature>\n")
    _proofs, report = bring_up(LAB_FILE, home)
    l1 = guests["kvm1"]
    assert l1.probes == 1 and learned().read_bytes() == l1.qemu_caps
    assert (outcome(report, SEED), outcome(report, KEEP)) == ("changed", "changed")


def test_an_l1_that_had_a_probe_before_this_up_never_teaches_l0(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    """Whoever has been root in the L1 could have written it; L0 would put it into other
    L1s of the image (other seats)."""
    bring_up(LAB_FILE, home)
    learned().unlink()
    l1 = guests["kvm1"]
    l1.files[QEMU_PROBE] = b"<qemuCaps>\n  <written by='a user'/>\n</qemuCaps>\n"
    l1.conn.lookupByName("nestlab-linux-nested-prime1").destroy()
    _proofs, report = bring_up(LAB_FILE, home)
    assert outcome(report, KEEP) == "ok" and not learned().exists()
