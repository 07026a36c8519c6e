"""`nestlab restart` and `nestlab rebuild` of one guest, on libvirt's test driver with FAKE
L1s that follow their domains' boots (tests/integration/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import libvirt
import pytest
from click.testing import CliRunner

from nestlab.build.seed import read_seed_iso
from nestlab.cli import main
from nestlab.commands.context import LabContext
from nestlab.state.keys import known_hosts_path
from nestlab.state.record import lab_lock, read_events
from tests.fakes.linux import FakeLinuxL1
from tests.integration.conftest import LAB_FILE, bring_up

L1_DOMAIN = "nestlab-linux-nested-kvm1"
L2_DOMAIN = "nestlab-linux-nested-prime1"
PINNED = ("kvm1 ssh-ed25519 AAAAkvm1\nprime1 ssh-ed25519 AAAAprime1\n"
          "other ssh-ed25519 AAAAother\n")


def nestlab(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def nestlab_json(*args: str) -> dict[str, Any]:
    code, out, err = nestlab(*args, "--lab", "linux-nested", "--json")
    assert code == 0, err
    value: dict[str, Any] = json.loads(out)
    return value


@pytest.fixture
def lab(l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> LabContext:
    """The example lab up, with host keys pinned for its guests (and one more name)."""
    bring_up(LAB_FILE, home)
    ctx = LabContext.load(home / "labs" / "linux-nested")
    known_hosts_path(ctx.lab_dir).write_text(PINNED)
    return ctx


def pinned(ctx: LabContext) -> list[str]:
    return [line.split()[0] for line in known_hosts_path(ctx.lab_dir).read_text().splitlines()]


def l2_id(guests: dict[str, FakeLinuxL1]) -> int:
    dom = guests["kvm1"].conn.lookupByName(L2_DOMAIN)
    assert dom.isActive()
    return int(dom.ID())


def test_restart_of_an_l2_boots_it_again_in_its_l1_and_proves_it(
        lab: LabContext, guests: dict[str, FakeLinuxL1], l0: libvirt.virConnect) -> None:
    before, l1_before = l2_id(guests), l0.lookupByName(L1_DOMAIN).ID()
    result = nestlab_json("restart", "prime1")
    assert l2_id(guests) != before  # a new boot, running
    assert l0.lookupByName(L1_DOMAIN).ID() == l1_before  # its L1 untouched
    assert (result["guest"], result["level"], result["l1"]) == ("prime1", "L2", "kvm1")
    assert [p["guest"] for p in result["proofs"]] == ["prime1"]
    assert [(t["phase"], t["outcome"]) for t in result["timings"]] == [
        ("restart in kvm1", "changed"), ("proven (SSH via kvm1)", "ok")]
    # A restarted guest keeps its host key (the prime keeps it on its disk): the pin stays.
    assert pinned(lab) == ["kvm1", "prime1", "other"]
    assert {e["command"] for e in read_events(lab.lab_dir)} == {"up", "restart"}


def test_restart_of_an_l1_boots_it_again_and_brings_its_l2s_back(
        lab: LabContext, guests: dict[str, FakeLinuxL1], l0: libvirt.virConnect) -> None:
    l1_before, l2_before = l0.lookupByName(L1_DOMAIN).ID(), l2_id(guests)
    disk = lab.plan.host("kvm1").disk_path.stat()
    result = nestlab_json("restart", "kvm1")
    assert l0.lookupByName(L1_DOMAIN).ID() != l1_before
    assert lab.plan.host("kvm1").disk_path.stat().st_ino == disk.st_ino  # the same disk
    assert len(guests["kvm1"].boots) == 2
    assert l2_id(guests) != l2_before  # off after the L1's boot, started by up's steps
    assert [p["guest"] for p in result["proofs"]] == ["prime1"]
    changed = [(t["guest"], t["phase"]) for t in result["timings"] if t["outcome"] == "changed"]
    assert changed == [("kvm1", "restart on L0"), ("prime1", "define + start in kvm1")]
    assert pinned(lab) == ["kvm1", "prime1", "other"]


def test_rebuild_of_an_l1_makes_a_new_overlay_and_proves_it_again(
        lab: LabContext, guests: dict[str, FakeLinuxL1], l0: libvirt.virConnect) -> None:
    host = lab.plan.host("kvm1")
    old_disk, old_uuid = host.disk_path.stat(), l0.lookupByName(L1_DOMAIN).UUIDString()
    result = nestlab_json("rebuild", "kvm1")
    new_disk = host.disk_path.stat()
    assert (new_disk.st_ino, new_disk.st_mtime_ns) != (old_disk.st_ino, old_disk.st_mtime_ns)
    dom = l0.lookupByName(L1_DOMAIN)
    assert dom.isActive() and dom.UUIDString() != old_uuid  # defined anew
    assert str(host.disk_path) in result["removed"] and str(host.seed_path) in result["removed"]
    assert f"domain {L1_DOMAIN}" in result["removed"]
    l1 = guests["kvm1"]
    assert l1.boots[0][0] != l1.boots[-1][0]  # the L1 that answered booted a new disk
    assert l1.domain_state(L2_DOMAIN) == "running"  # made again inside it
    assert [p["guest"] for p in result["proofs"]] == ["prime1"]
    # The old keys are forgotten; the new L1's own was pinned with its new seed medium,
    # before it booted (its L2's is pinned at first contact, which a FAKE L2 never makes).
    assert pinned(lab) == ["other", "kvm1"]
    assert known_hosts_path(lab.lab_dir).read_text().splitlines()[1] == \
        "kvm1 " + read_seed_iso(host.seed_path)["ssh_host_ed25519_key.pub"].strip()
    assert host.console_log.exists()  # kept: the new boot's lines follow the old


def test_rebuild_of_an_l2_deletes_its_disk_in_the_l1_and_makes_it_again(
        lab: LabContext, guests: dict[str, FakeLinuxL1]) -> None:
    l1, guest = guests["kvm1"], lab.plan.host("kvm1").guests[0]
    before = l2_id(guests)
    seen = len(l1.calls)
    result = nestlab_json("rebuild", "prime1")
    calls = l1.calls[seen:]
    removed_at = calls.index(f"rm -f {guest.disk_path}")
    assert calls.index(f"virsh -c qemu:///system undefine {L2_DOMAIN}") < removed_at
    assert any(c.startswith(f"qemu-img create -q -f qcow2 {guest.disk_path}")
               for c in calls[removed_at:])
    assert l2_id(guests) != before
    assert result["removed"] == ["domain in kvm1", "disk in kvm1"]
    assert [p["guest"] for p in result["proofs"]] == ["prime1"]
    assert pinned(lab) == ["kvm1", "other"]


@pytest.mark.parametrize("command", ["restart", "rebuild"])
def test_a_busy_lab_is_refused(command: str, lab: LabContext,
                               guests: dict[str, FakeLinuxL1]) -> None:
    seen = len(guests["kvm1"].calls)
    with lab_lock(lab.lab_dir, "up"):
        code, _, err = nestlab(command, "--lab", "linux-nested", "prime1")
    assert code == 1
    assert "lab 'linux-nested' is busy: `nestlab up`" in err
    assert guests["kvm1"].calls[seen:] == []


@pytest.mark.parametrize("command", ["restart", "rebuild"])
def test_a_name_that_is_not_a_guest_is_exit_2(command: str, lab: LabContext) -> None:
    code, out, err = nestlab(command, "--lab", "linux-nested", "prime9")
    assert (code, out) == (2, "")
    assert err == ("nestlab: error: lab linux-nested has no guest named 'prime9'\n"
                   "hint: Its guests: kvm1, prime1.\n")


def test_an_l2_of_a_stopped_l1_is_refused_with_how(lab: LabContext,
                                                   l0: libvirt.virConnect) -> None:
    l0.lookupByName(L1_DOMAIN).destroy()
    code, _, err = nestlab("restart", "--lab", "linux-nested", "prime1")
    assert code == 1
    assert "kvm1 is not running, so its L2s cannot be reached" in err
    assert "hint: `nestlab restart kvm1` starts it with its L2s." in err


def test_rebuild_never_removes_a_domain_that_is_not_the_labs(
        lab: LabContext, l0: libvirt.virConnect) -> None:
    dom = l0.lookupByName(L1_DOMAIN)
    dom.destroy()
    dom.undefine()
    l0.defineXML(f"<domain type='test'><name>{L1_DOMAIN}</name><memory>65536</memory>"
                 "<os><type>hvm</type></os></domain>")
    code, _, err = nestlab("rebuild", "--lab", "linux-nested", "kvm1")
    assert code == 1
    assert f"a domain named {L1_DOMAIN} exists and is not lab linux-nested's" in err
    assert l0.lookupByName(L1_DOMAIN)  # still there
    assert lab.plan.host("kvm1").disk_path.exists()  # and nothing else was removed
