"""The FAKE Linux L1 follows its domain on L0 as a real L1 does (tests/fakes/linux.py):
these pin what it copies, so the tests of restart and rebuild stand on real behaviour."""

from __future__ import annotations

import re
from pathlib import Path

import libvirt
import pytest

from nestlab.commands.context import LabContext
from nestlab.transport.base import Unreachable
from tests.fakes.linux import FakeLinuxL1
from tests.integration.conftest import LAB_FILE, bring_up

L2 = "nestlab-linux-nested-prime1"


def test_nestlab_never_makes_an_l2_autostart(l0: libvirt.virConnect,
                                             guests: dict[str, FakeLinuxL1], home: Path) -> None:
    """What the fake's reboot copies: libvirt starts only autostart domains when the L1
    boots, and nestlab marks none of its L2s so (only the L2 network)."""
    bring_up(LAB_FILE, home)
    l1 = guests["kvm1"]
    autostarts = re.findall(r"[\w-]*autostart [\w-]+", " ".join(l1.calls))
    assert autostarts == ["net-autostart nestlab-nat"]
    assert not l1.conn.lookupByName(L2).autostart()


def test_a_new_boot_leaves_the_l2s_off_and_a_new_disk_is_a_new_l1(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    bring_up(LAB_FILE, home)
    l1 = guests["kvm1"]
    dom = l0.lookupByName("nestlab-linux-nested-kvm1")
    dom.destroy()
    with pytest.raises(Unreachable):
        l1.wait_until_reachable(0.2)  # its domain is off: nothing answers
    dom.create()
    l1.wait_until_reachable(5)
    assert l1.domain_state(L2) == "shut off"
    assert l1.libvirtd_active  # enabled in the image: it runs after a boot

    host = LabContext.load(home / "labs" / "linux-nested").plan.host("kvm1")
    host.disk_path.unlink()
    host.disk_path.write_bytes(b"another overlay")
    l1.wait_until_reachable(5)
    assert l1.domain_state(L2) is None
    assert l1.files == {} and not l1.libvirtd_active


def test_a_new_top_on_a_layer_boots_what_the_layer_held_and_a_torn_l2_is_recorded(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    """The layer model the tests of reset and snapshots stand on: what was written is on
    the layer the L1 ran on; a new top on it starts from that (L2s off, the autostart
    network on); an L1 stopped under a running L2 is recorded as torn."""
    from nestlab.virt import layers

    bring_up(LAB_FILE, home)
    l1 = guests["kvm1"]
    host = LabContext.load(home / "labs" / "linux-nested").plan.host("kvm1")
    dom = l0.lookupByName("nestlab-linux-nested-kvm1")
    assert l1.run(["touch", "/var/lib/kept"]).ok
    dom.destroy()  # the L2 still runs in it: not what nestlab does
    layers.freeze_top(host, layers.baseline_path(host))
    dom.create()
    l1.wait_until_reachable(5)
    assert "/var/lib/kept" in l1.files
    assert l1.domain_state(L2) == "shut off"
    assert l1.conn.networkLookupByName("nestlab-nat").isActive()
    assert [names for _layer, names in l1.torn] == [[L2]]
    assert l1.run(["touch", "/var/lib/later"]).ok
    dom.destroy()
    layers.new_top(host, layers.baseline_path(host))
    dom.create()
    l1.wait_until_reachable(5)
    assert "/var/lib/kept" in l1.files and "/var/lib/later" not in l1.files
