"""The baseline, `nestlab reset` and `nestlab snapshot`, on libvirt's test driver with FAKE
L1s that keep what is written in them per disk layer (tests/fakes/linux.py): a file
written in an L1 or its L2 lives on the L1's disk, so only the right layer brings it
back. Disks are real qcow2 layers made by qemu-img."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import libvirt
import pytest
from click.testing import CliRunner

from nestlab.cli import main
from nestlab.commands.context import LabContext
from nestlab.commands.reset import make_baseline
from nestlab.errors import NestlabError
from nestlab.progress import Reporter
from nestlab.state.keys import known_hosts_path
from nestlab.virt import layers, objects
from nestlab.virt.connection import LibvirtError
from tests.conftest import facts
from tests.fakes.lab import inventory
from tests.fakes.linux import FakeLinuxL1, FakePrime
from tests.integration.conftest import LAB_FILE, bring_up

L2_DOMAIN = "nestlab-linux-nested-prime1"
L1_MARK, L2_MARK = "/var/lib/student-was-here", "/root/student-was-here"


def nestlab(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "--lab", "linux-nested"])
    return result.exit_code, result.stdout, result.stderr


def nestlab_json(*args: str) -> dict[str, Any]:
    code, out, err = nestlab(*args, "--json")
    assert code == 0, err
    value: dict[str, Any] = json.loads(out)
    return value


@pytest.fixture
def lab(l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> LabContext:
    """The example lab up, with its baseline kept (`up --baseline`)."""
    bring_up(LAB_FILE, home)
    lab_dir = home / "labs" / "linux-nested"
    make_baseline(lab_dir, Reporter("linux-nested", lab_dir, "up", show=False))
    return LabContext.load(lab_dir)


def l2(guests: dict[str, FakeLinuxL1]) -> FakePrime:
    return FakePrime("prime1", L2_DOMAIN, guests["kvm1"])


def mark(guests: dict[str, FakeLinuxL1], suffix: str = "") -> None:
    """A student's change: a file in the L1 and one in its L2."""
    assert guests["kvm1"].run(["touch", L1_MARK + suffix]).ok
    assert l2(guests).run(["touch", L2_MARK + suffix]).ok


def marked(guests: dict[str, FakeLinuxL1], suffix: str = "") -> tuple[bool, bool]:
    return (L1_MARK + suffix in guests["kvm1"].files,
            l2(guests).run(["test", "-e", L2_MARK + suffix]).ok)


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_the_baseline_keeps_the_l1_s_memory_with_its_l2s_paused_and_everything_runs_after(
        lab: LabContext, guests: dict[str, FakeLinuxL1], l0: libvirt.virConnect) -> None:
    host, l1 = lab.plan.host("kvm1"), guests["kvm1"]
    assert layers.has_baseline(host)
    assert layers.backing_file(host.disk_path) == layers.baseline_path(host)
    state = layers.state_path(layers.baseline_path(host))
    assert state.stat().st_mode & 0o777 == 0o600  # the L1's memory: its secrets too
    suspend = f"virsh -c qemu:///system suspend {L2_DOMAIN}"
    assert suspend in l1.calls and not [c for c in l1.calls if " shutdown " in c]
    assert l1.saved[str(state)].conn.lookupByName(L2_DOMAIN).state()[0] == \
        libvirt.VIR_DOMAIN_PAUSED  # kept paused, not torn
    assert l1.restored_from == [str(state)] and l1.torn == []
    assert l0.lookupByName("nestlab-linux-nested-kvm1").isActive()
    assert l1.domain_state(L2_DOMAIN) == "running"
    now = time.time()
    assert l1.clock is not None and abs(l1.clock - now) < 60
    assert abs(l1.l2_clocks[L2_DOMAIN] - now) < 60
    again = make_baseline(lab.lab_dir, Reporter("linux-nested", lab.lab_dir, "up", show=False))
    assert again.hosts == []  # kept once


def test_reset_throws_away_what_was_written_in_the_l1_and_its_l2(
        lab: LabContext, guests: dict[str, FakeLinuxL1]) -> None:
    host, l1 = lab.plan.host("kvm1"), guests["kvm1"]
    baseline = fingerprint(layers.baseline_path(host))
    mark(guests)
    assert marked(guests) == (True, True)
    seen = len(l1.calls)
    result = nestlab_json("reset")
    assert marked(guests) == (False, False)
    assert l1.domain_state(L2_DOMAIN) == "running"
    assert [p["guest"] for p in result["proofs"]] == ["prime1"]
    changed = [(t["guest"], t["phase"]) for t in result["timings"] if t["outcome"] == "changed"]
    assert changed == [("kvm1", "back to the baseline"), ("kvm1", "memory restored")]
    provisioning = [c for c in l1.calls[seen:] if c.startswith(("put ", "qemu-img"))
                    or "define" in c or " start " in c]
    assert provisioning == []  # nothing made or booted again inside the L1
    assert l1.restored_from == [str(layers.state_path(layers.baseline_path(host)))] * 2
    assert fingerprint(layers.baseline_path(host)) == baseline
    assert l1.torn == []
    mark(guests)  # and again: a reset is repeatable
    nestlab_json("reset")
    assert marked(guests) == (False, False)


def test_a_snapshot_brings_back_the_change_made_before_it(
        lab: LabContext, guests: dict[str, FakeLinuxL1]) -> None:
    host = lab.plan.host("kvm1")
    mark(guests, "-1")
    saved = nestlab_json("snapshot", "save", "step1")
    assert (saved["action"], saved["snapshot"], saved["hosts"]) == ("save", "step1", ["kvm1"])
    assert [p["guest"] for p in saved["proofs"]] == ["prime1"]
    assert marked(guests, "-1") == (True, True)  # the lab goes on from where it was
    kept = fingerprint(layers.snapshot_path(host, "step1"))
    mark(guests, "-2")
    nestlab_json("snapshot", "restore", "step1")
    assert marked(guests, "-1") == (True, True)
    assert marked(guests, "-2") == (False, False)
    assert fingerprint(layers.snapshot_path(host, "step1")) == kept
    listed = nestlab_json("snapshot", "list")
    assert [(s["name"], s["hosts"], s["missing"]) for s in listed] == [
        ("step1", ["kvm1"], [])]
    assert listed[0]["bytes_on_disk"] > 0 and listed[0]["saved"].endswith("Z")
    code, out, _ = nestlab("snapshot", "list")
    assert code == 0 and out.splitlines()[1].startswith("step1 ")
    nestlab_json("reset")
    assert marked(guests, "-1") == (False, False)
    assert guests["kvm1"].torn == []


def test_a_snapshot_in_use_is_not_deleted_and_one_that_is_not_is(
        lab: LabContext, guests: dict[str, FakeLinuxL1]) -> None:
    nestlab_json("snapshot", "save", "a")
    code, _, err = nestlab("snapshot", "delete", "a")
    assert code == 2 and "the layer under its current disk" in err and "hint:" in err
    assert layers.snapshot_names(lab.plan.host("kvm1")) == ["a"]
    nestlab_json("reset")
    assert nestlab_json("snapshot", "delete", "a")["hosts"] == ["kvm1"]
    assert nestlab_json("snapshot", "list") == []


@pytest.mark.parametrize(("args", "says"), [
    (("snapshot", "restore", "nosuch"), "has no snapshot nosuch"),
    (("snapshot", "delete", "nosuch"), "has no snapshot nosuch"),
    (("snapshot", "save", "../x"), "is not a snapshot name"),
])
def test_bad_names_are_exit_2_and_change_nothing(
        lab: LabContext, l0: libvirt.virConnect, args: tuple[str, ...], says: str) -> None:
    before = (inventory(l0), fingerprint(lab.plan.host("kvm1").disk_path))
    code, _, err = nestlab(*args)
    assert code == 2 and says in err and "Traceback" not in err
    assert (inventory(l0), fingerprint(lab.plan.host("kvm1").disk_path)) == before


def test_a_taken_snapshot_name_is_refused(lab: LabContext) -> None:
    nestlab_json("snapshot", "save", "a")
    code, _, err = nestlab("snapshot", "save", "a")
    assert code == 2 and "has a snapshot a already" in err


def test_reset_without_a_baseline_says_how_to_make_one(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    bring_up(LAB_FILE, home)
    code, _, err = nestlab("reset")
    assert code == 2 and "has no baseline for kvm1" in err and "up --baseline" in err


def refuse_saves(monkeypatch: pytest.MonkeyPatch) -> None:
    """L0's libvirt cannot save a domain (as QEMU refuses to migrate some devices)."""
    def refuse(dom: libvirt.virDomain, _path: Path) -> None:
        raise LibvirtError(f"cannot save {dom.name()}'s memory: operation not supported (test)")

    monkeypatch.setattr(objects, "save_domain", refuse)


def test_an_l1_that_cannot_be_saved_is_kept_shut_down_with_its_l2s_shut_down_first(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bring_up(LAB_FILE, home)
    refuse_saves(monkeypatch)
    lab_dir = home / "labs" / "linux-nested"
    result = make_baseline(lab_dir, Reporter("linux-nested", lab_dir, "up", show=False))
    assert any("operation not supported (test): shut down instead" in n for n in result.notes)
    l1, host = guests["kvm1"], LabContext.load(lab_dir).plan.host("kvm1")
    shutdown = f"virsh -c qemu:///system shutdown {L2_DOMAIN}"
    assert shutdown in l1.calls and "sync" in l1.calls[l1.calls.index(shutdown):]
    assert not layers.state_path(layers.baseline_path(host)).exists()
    assert l1.torn == [] and l1.domain_state(L2_DOMAIN) == "running"  # booted, L2 started
    mark(guests)
    nestlab_json("reset")
    assert marked(guests) == (False, False)


def test_an_l2_that_does_not_shut_down_is_powered_off_before_the_l1_stops(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from nestlab.commands import reset as reset_module

    monkeypatch.setattr(reset_module, "L2_SHUTDOWN", 0.2)
    refuse_saves(monkeypatch)
    bring_up(LAB_FILE, home)
    guests["kvm1"].ignores_acpi.add(L2_DOMAIN)
    lab_dir = home / "labs" / "linux-nested"
    result = make_baseline(lab_dir, Reporter("linux-nested", lab_dir, "up", show=False))
    assert any("prime1 did not shut down" in note for note in result.notes)
    assert guests["kvm1"].torn == []


def test_a_memory_that_cannot_be_restored_is_booted_from_its_disk_and_says_so(
        lab: LabContext, guests: dict[str, FakeLinuxL1],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_conn: libvirt.virConnect, path: Path) -> None:
        raise LibvirtError(f"cannot restore {path.name}: incompatible QEMU (test)")

    monkeypatch.setattr(objects, "restore_domain", refuse)
    mark(guests)
    code, out, err = nestlab("reset")
    assert code == 0, err
    assert "incompatible QEMU (test): booted from its disk instead" in out + err
    assert guests["kvm1"].domain_state(L2_DOMAIN) == "running"  # up's steps started it
    assert marked(guests) == (False, False)


def test_a_memory_kept_without_its_layer_is_not_restored(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    """A save cut short before its layer was frozen leaves a state of a disk that may
    have run on since: the baseline made later does not use it."""
    bring_up(LAB_FILE, home)
    lab_dir = home / "labs" / "linux-nested"
    host = LabContext.load(lab_dir).plan.host("kvm1")
    stale = layers.state_path(layers.baseline_path(host))
    stale.write_bytes(b"memory of another moment")
    l0.lookupByName(host.domain_name).destroy()  # the L1 off: kept by its disk alone
    make_baseline(lab_dir, Reporter("linux-nested", lab_dir, "up", show=False))
    assert layers.has_baseline(host) and not stale.exists()
    assert guests["kvm1"].restored_from == []


def test_a_reset_cut_short_is_finished_by_reset_again(
        lab: LabContext, guests: dict[str, FakeLinuxL1],
        monkeypatch: pytest.MonkeyPatch) -> None:
    mark(guests)
    real = layers.new_top

    def fail(*_args: object) -> None:
        raise NestlabError("disk full (test)")

    monkeypatch.setattr(layers, "new_top", fail)
    code, _, err = nestlab("reset")
    assert code == 1 and "disk full" in err
    monkeypatch.setattr(layers, "new_top", real)
    nestlab_json("reset")
    assert marked(guests) == (False, False)


def test_down_leaves_nothing_of_the_layers(
        lab: LabContext, guests: dict[str, FakeLinuxL1], l0: libvirt.virConnect) -> None:
    nestlab_json("snapshot", "save", "a")
    code, _, err = nestlab("down")
    assert code == 0, err
    assert not (lab.lab_dir / "hosts").exists()
    assert not [d for d in inventory(l0)["domains"]  # type: ignore[attr-defined]
                if str(d).startswith("nestlab-linux-nested")]


def test_up_with_baseline_keeps_it_once_and_says_so(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nestlab.host.facts.read_host_facts",
                        lambda _uri, _root: facts("amd-nested-1"))

    def up(*args: str) -> Any:
        return CliRunner().invoke(main, ["--connect", "test:///l0", "up", "-f", str(LAB_FILE),
                                         "--baseline", *args])

    first = up("--json")
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["baseline"] == ["kvm1"]
    host = LabContext.load(home / "labs" / "linux-nested").plan.host("kvm1")
    assert layers.has_baseline(host)
    kept = fingerprint(layers.baseline_path(host))
    second = up()
    assert second.exit_code == 0, second.stderr
    assert "baseline kept" not in second.stdout and "0 changed" in second.stdout
    assert fingerprint(layers.baseline_path(host)) == kept


def test_reset_pins_the_host_keys_the_baseline_s_guests_have(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    """An L2 rebuilt after the baseline was pinned with a new key; after a reset the old L2
    (and its old key) is back, so its old pin must be too. Other pins stay."""
    bring_up(LAB_FILE, home)
    lab_dir = home / "labs" / "linux-nested"
    pins = known_hosts_path(lab_dir)
    pins.write_text("kvm1 ssh-ed25519 AAAAkvm1\nprime1 ssh-ed25519 AAAAprime1\n")
    make_baseline(lab_dir, Reporter("linux-nested", lab_dir, "up", show=False))
    pins.write_text("kvm1 ssh-ed25519 AAAAkvm1\nother ssh-ed25519 AAAAother\n"
                    "prime1 ssh-ed25519 AAAArebuilt\n")
    nestlab_json("reset")
    assert sorted(pins.read_text().splitlines()) == [
        "kvm1 ssh-ed25519 AAAAkvm1", "other ssh-ed25519 AAAAother",
        "prime1 ssh-ed25519 AAAAprime1"]
    nestlab_json("snapshot", "save", "a")
    host = LabContext.load(lab_dir).plan.host("kvm1")
    assert layers.pins_path(layers.snapshot_path(host, "a")).exists()
    nestlab_json("reset")
    nestlab_json("snapshot", "delete", "a")
    assert not layers.pins_path(layers.snapshot_path(host, "a")).exists()
