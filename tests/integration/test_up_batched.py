"""`up` on a lab that is up asks each L1 its "is it done?" questions in one round trip,
and still repairs what is not done (the lab on libvirt's test driver, FAKE guests)."""

from __future__ import annotations

import shlex
import textwrap
import threading
from pathlib import Path, PurePosixPath
from typing import Any

import libvirt
import pytest

from nestlab.build.images import L1_SUMS, find_image, l1_sums
from nestlab.drivers import Proof
from nestlab.drivers.linux import LinuxDriver
from nestlab.provision.linux import (
    _LIBVIRT_TABLES,
    _NETWORKS_FOLDER,
    _PROBE_FOLDER,
    _TABLES,
    _copies,
)
from tests.fakes.linux import FakeLinuxL1
from tests.integration.conftest import bring_up

TWO_L2S = textwrap.dedent("""\
    lab: batched
    networks:
      - name: lab
        cidr: 10.82.0.0/24
    hosts:
      - name: kvm1
        os: debian-12
        memory: 2GiB
        networks: [lab]
        guests: [{name: g1}, {name: g2}]
""")


def lab(tmp_path: Path) -> Path:
    path = tmp_path / "batched.yaml"
    path.write_text(TWO_L2S)
    return path


def test_up_on_a_lab_that_is_up_sends_one_batch_and_nothing_else(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        tmp_path: Path) -> None:
    bring_up(lab(tmp_path), home)
    l1 = guests["kvm1"]
    seen, batches = len(l1.calls), len(l1.batches)
    _proofs, again = bring_up(lab(tmp_path), home)
    assert again.counts()["changed"] == 0
    assert len(l1.batches) == batches + 1
    assert l1.calls[seen:] == l1.batches[-1]  # every command it sent was in the batch
    # one virsh for both of libvirt's tables (net-list, list): ~0.35 s each in an emulated L1
    assert sum(c.startswith("virsh") for c in l1.batches[-1]) == 1


def test_up_repairs_l2s_stopped_or_gone_after_one_batch(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        tmp_path: Path) -> None:
    bring_up(lab(tmp_path), home)
    l1 = guests["kvm1"]
    l1.conn.lookupByName("nestlab-batched-g1").destroy()
    gone = l1.conn.lookupByName("nestlab-batched-g2")
    gone.destroy()
    gone.undefine()
    l1.conn.networkLookupByName("nestlab-nat").destroy()
    _proofs, again = bring_up(lab(tmp_path), home)
    changed = [(t["guest"], t["phase"]) for t in again.timings if t["outcome"] == "changed"]
    assert changed == [("kvm1", "L2 network"), ("g1", "define + start in kvm1"),
                       ("g2", "define + start in kvm1")]
    assert l1.domain_state("nestlab-batched-g1") == "running"
    assert l1.domain_state("nestlab-batched-g2") == "running"
    assert l1.conn.networkLookupByName("nestlab-nat").isActive()


def test_a_libvirtd_that_stopped_is_started_and_then_read_afresh(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        tmp_path: Path) -> None:
    """The batch saw every virsh fail (no libvirtd); the steps after the start read anew."""
    bring_up(lab(tmp_path), home)
    l1 = guests["kvm1"]
    l1.libvirtd_active = False
    l1.conn.lookupByName("nestlab-batched-g1").destroy()
    _proofs, again = bring_up(lab(tmp_path), home)
    changed = [(t["guest"], t["phase"]) for t in again.timings if t["outcome"] == "changed"]
    assert changed == [("kvm1", "libvirt in L1"), ("g1", "define + start in kvm1")]
    assert l1.domain_state("nestlab-batched-g1") == "running"


def test_the_l2s_of_an_l1_are_proven_at_the_same_time(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    both = threading.Barrier(2, timeout=10)  # a proof alone would wait here in vain
    real_prove = LinuxDriver.prove

    def prove(self: LinuxDriver, *args: Any) -> Proof:
        both.wait()
        return real_prove(self, *args)

    monkeypatch.setattr(LinuxDriver, "prove", prove)
    proofs, _reporter = bring_up(lab(tmp_path), home)
    assert [p.guest for p in proofs] == ["g1", "g2"]  # in the steps' order


def test_a_first_up_asks_each_question_once(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        tmp_path: Path) -> None:
    """A new L1 is asked libvirt's tables and about the L2 image in the first batch alone
    (~0.4 s each in an emulated L1): the images are checked before the network's start
    makes the batch old, and each virsh that acts reads the tables after it, which
    answer the next step's question. The L1 is as nestlab's image boots: libvirt answers
    (its socket starts it), the L2 image is there with the list of its hashes (nothing is
    hashed) and so are the folders nestlab puts files in (asked in the batch: no command
    makes them)."""
    l1 = guests["kvm1"] = FakeLinuxL1("kvm1", libvirtd_active=True, cpus=2)
    l1.folders |= {_PROBE_FOLDER, _NETWORKS_FOLDER}
    prime = find_image("prime")
    assert prime is not None
    for local, remote in _copies(prime):
        l1.folders.add(str(PurePosixPath(remote).parent))
        l1.files[remote] = local.read_bytes()
    l1.files[f"/var/lib/nestlab/images/prime/{L1_SUMS}"] = l1_sums(prime).encode()
    bring_up(lab(tmp_path), home)
    assert not any(c.startswith("put /var/lib/nestlab/images/") for c in l1.calls)
    assert not any(c.startswith(f"mkdir -p {_NETWORKS_FOLDER}") for c in l1.calls)
    assert not any(c.startswith("sha256sum /var/lib/nestlab/images/") for c in l1.calls)
    tables = shlex.join(_LIBVIRT_TABLES)
    listed = [c for c in l1.calls if L1_SUMS in c]
    assert l1.calls.count(tables) == 1 and tables in l1.batches[0]
    assert len(listed) == len(set(listed)) == 2 and set(listed) <= set(l1.batches[0])
    acts = [c for c in l1.calls if c.startswith("virsh") and c != tables]
    assert len(acts) == 3  # the network's, then each L2's define + start
    assert all(c.endswith(f"echo nestlab-tables-follow; {_TABLES}'") for c in acts)
