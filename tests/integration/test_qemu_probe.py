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
from tests.fakes.linux import FakeLinuxL1, qemu_caps_of
from tests.integration.conftest import LAB_FILE, bring_up

SEED, KEEP = "QEMU probe from L0", "QEMU probe kept on L0"


def learned(cpus: int) -> Path:
    image = find_image("debian-12")
    assert image is not None
    return learned_probe_path(image, cpus)


def outcome(report: Reporter, phase: str) -> str:
    [found] = [t["outcome"] for t in report.timings if t["phase"] == phase]
    return str(found)


def test_the_first_l1_of_an_image_teaches_l0_its_probe(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    _proofs, first = bring_up(LAB_FILE, home)
    l1 = guests["kvm1"]
    assert l1.probes == 1 and (outcome(first, SEED), outcome(first, KEEP)) == ("ok", "changed")
    assert learned(l1.cpus).read_bytes() == l1.qemu_caps == l1.files[QEMU_PROBE]
    assert l1.cpu_reads == [("nestlab-linux-nested-prime1", "per feature")]  # its own probe
    l1.calls.clear()
    _proofs, again = bring_up(LAB_FILE, home)  # a lab that is up: not a round trip more
    assert (outcome(again, SEED), outcome(again, KEEP)) == ("ok", "ok")
    asked = [c for c in l1.calls if QEMU_PROBE in c]
    assert asked == [f"test -s {QEMU_PROBE}"] and asked[0] in l1.batches[-1]
    assert l1.probes == 1


def test_a_later_l1_of_the_image_has_it_before_its_first_define(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    for cpus in (1, 2):  # from earlier L1s, as the first test's; one fits this L1
        learned(cpus).parent.mkdir(parents=True, exist_ok=True)
        learned(cpus).write_bytes(qemu_caps_of(cpus))
    _proofs, report = bring_up(LAB_FILE, home)
    l1 = guests["kvm1"]
    assert l1.probes == 0
    assert (outcome(report, SEED), outcome(report, KEEP)) == ("changed", "ok")
    # Put without the flag that makes libvirt read a guest's CPU a feature at a time;
    # L0 keeps the probe as libvirt wrote it.
    put = l1.files[QEMU_PROBE]
    assert put == l1.qemu_caps.replace(b"  <flag name='cpu-unavailable-features'/>\n", b"")
    assert learned(l1.cpus).read_bytes() == qemu_caps_of(l1.cpus)
    assert l1.cpu_reads == [("nestlab-linux-nested-prime1", "feature words")]
    # Kept: told by its hash (a short answer), not by reading the file back (166 KB).
    assert f"sha256sum {QEMU_PROBE}" in l1.calls and f"cat {QEMU_PROBE}" not in l1.calls


def test_a_probe_that_does_not_fit_is_replaced_by_the_l1s_own(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    """L0's copy came from an L1 of another CPU, or before a kernel update on L0: libvirt
    finds it does not fit, probes again, and L0 keeps the new one."""
    for cpus in (1, 2):
        learned(cpus).parent.mkdir(parents=True, exist_ok=True)
        learned(cpus).write_text("<qemuCaps>\n  <hostCPUSignature>another</hostCPUSignature>\n")
    _proofs, report = bring_up(LAB_FILE, home)
    l1 = guests["kvm1"]
    assert l1.probes == 1 and learned(l1.cpus).read_bytes() == l1.qemu_caps
    assert (outcome(report, SEED), outcome(report, KEEP)) == ("changed", "changed")


def test_an_l1_that_had_a_probe_before_this_up_never_teaches_l0(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    """Whoever has been root in the L1 could have written it; L0 would put it into other
    L1s of the image (other seats)."""
    bring_up(LAB_FILE, home)
    l1 = guests["kvm1"]
    learned(l1.cpus).unlink()
    l1.files[QEMU_PROBE] = b"<qemuCaps>\n  <written by='a user'/>\n</qemuCaps>\n"
    l1.conn.lookupByName("nestlab-linux-nested-prime1").destroy()
    _proofs, report = bring_up(LAB_FILE, home)
    assert outcome(report, KEEP) == "ok" and not learned(l1.cpus).exists()


def test_l1s_of_other_vcpu_counts_keep_a_probe_each(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        tmp_path: Path) -> None:
    """The probe holds CPUID, whose topology follows the vCPU count: the probe of an L1 of 2
    vCPUs does not fit one of 1 (seen on real L1s). One learned probe for both would be
    replaced at every `up` by whichever L1 probed last, and every later L1 would probe."""
    def lab(name: str, hosts: tuple[str, str]) -> Path:
        one, two = hosts
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"""lab: {name}
networks:
  - {{name: lab, mode: nat, cidr: 10.79.0.0/24}}
hosts:
  - name: {one}
    os: debian-12
    cpus: 1
    networks: [lab]
    guests: [{{name: {one}-l2}}]
  - name: {two}
    os: debian-12
    cpus: 2
    networks: [lab]
    guest_network: {{mode: nat, cidr: 192.168.101.0/24}}
    guests: [{{name: {two}-l2}}]
""")
        return path

    bring_up(lab("first", ("kvm1", "kvm2")), home)
    assert (guests["kvm1"].cpus, guests["kvm2"].cpus) == (1, 2)
    assert guests["kvm1"].probes == guests["kvm2"].probes == 1
    assert learned(1).read_bytes() == qemu_caps_of(1)
    assert learned(2).read_bytes() == qemu_caps_of(2)
    bring_up(lab("second", ("kvm3", "kvm4")), home)  # new L1s of the same image
    assert guests["kvm3"].probes == guests["kvm4"].probes == 0
