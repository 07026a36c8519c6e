"""`status` against libvirt's test driver with FAKE L1s: honest states at both levels,
every running L1 asked at once, the recorded status for `--cached`, and the timings of
the `up` that did the work."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path

import libvirt
import pytest
from click.testing import CliRunner

from nestlab import report
from nestlab.cli import main
from nestlab.commands import context as labctx
from nestlab.commands.context import LabContext
from nestlab.commands.down import down
from nestlab.commands.status import lab_status
from nestlab.drivers.linux import LinuxDriver
from nestlab.progress import Reporter
from nestlab.state.record import NoSuchLab
from nestlab.state.seen import L1Seen, L2Seen, NetworkSeen, NothingSeen, cached_status, seen_path
from tests.conftest import EXAMPLES
from tests.fakes.lab import bring_up
from tests.fakes.linux import FakeLinuxL1

LAB_FILE = EXAMPLES / "linux-nested.yaml"
L1 = "nestlab-linux-nested-kvm1"
L2 = "nestlab-linux-nested-prime1"


def four_l1s(tmp_path: Path) -> Path:
    """A lab of four L1s with two L2s each."""
    hosts = "".join(
        f"  - name: kvm{i}\n    os: debian-12\n    memory: 2GiB\n    networks: [lab]\n"
        f"    guests: [{{name: prime{i}a}}, {{name: prime{i}b}}]\n" for i in range(1, 5))
    lab_file = tmp_path / "four.yaml"
    lab_file.write_text("lab: four\nnetworks:\n  - name: lab\n    cidr: 10.82.0.0/24\n"
                        f"hosts:\n{hosts}")
    return lab_file


def lab_dir(home: Path) -> Path:
    return home / "labs" / "linux-nested"


def kvm1(home: Path, answer_timeout: float = 5.0) -> L1Seen:
    [host] = lab_status(LabContext.load(lab_dir(home)), answer_timeout).seen.hosts
    return host


def prime1(state: str) -> tuple[L2Seen, ...]:
    return (L2Seen("prime1", L2, "192.168.100.10", state),)


def test_a_running_lab_shows_its_reserved_address_and_the_l2s_state(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    bring_up(LAB_FILE, home)
    seen = lab_status(LabContext.load(lab_dir(home))).seen
    assert seen.networks == (NetworkSeen("nestlab-linux-nested-lab", "active"),)
    # No DHCP lease is read (the test driver has none): the address is the planned one.
    assert kvm1(home) == L1Seen("kvm1", L1, "debian-12", "running", "10.77.0.10",
                                prime1("running"))
    guests["kvm1"].conn.lookupByName(L2).suspend()
    assert kvm1(home).guests == prime1("paused")
    guests["kvm1"].conn.lookupByName(L2).destroy()
    assert kvm1(home).guests == prime1("shut off")
    guests["kvm1"].conn.lookupByName(L2).undefine()
    assert kvm1(home).guests == prime1("absent")  # the L1 answered: really not there


@pytest.mark.parametrize(("act", "state", "address"), [
    (lambda dom: dom.destroy(), "shut off", None),
    (lambda dom: dom.suspend(), "paused", "10.77.0.10"),
])
def test_the_l2s_of_an_l1_that_is_not_running_are_unknown(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        act: object, state: str, address: str | None) -> None:
    bring_up(LAB_FILE, home)
    asked = guests["kvm1"].connected
    act(l0.lookupByName(L1))  # type: ignore[operator]
    assert kvm1(home) == L1Seen("kvm1", L1, "debian-12", state, address, prime1("unknown"))
    assert guests["kvm1"].connected == asked  # an L1 that is not running is not asked


def test_an_l1_that_runs_but_does_not_answer_is_booting(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    bring_up(LAB_FILE, home)
    guests["kvm1"].reachable = False
    host = kvm1(home, answer_timeout=0.2)
    assert (host.state, host.address, host.guests) == ("booting", "10.77.0.10",
                                                       prime1("unknown"))
    assert host.note is not None and "does not answer yet: kvm1: SSH: timed out" in host.note


def test_an_l1_whose_libvirt_does_not_answer_has_unknown_l2s(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    bring_up(LAB_FILE, home)
    guests["kvm1"].libvirtd_active = False
    host = kvm1(home)
    assert (host.state, host.guests) == ("running", prime1("unknown"))
    assert host.note is not None and "failed to connect to the hypervisor" in host.note


def test_every_running_l1_is_asked_at_once(l0: libvirt.virConnect,
                                           guests: dict[str, FakeLinuxL1], home: Path,
                                           tmp_path: Path) -> None:
    bring_up(four_l1s(tmp_path), home)
    for l1 in guests.values():
        l1.latency = 0.2  # each connect and command takes a while, as over SSH
        l1.visits.clear()
    seen = lab_status(LabContext.load(home / "labs" / "four")).seen
    assert [(h.name, h.state, [g.state for g in h.guests]) for h in seen.hosts] == [
        (f"kvm{i}", "running", ["running", "running"]) for i in range(1, 5)]
    visits = [v for l1 in guests.values() for v in l1.visits]
    assert len(visits) == 4
    # Every session began before any ended: they overlapped, none waited for another.
    assert max(began for began, _ in visits) < min(ended for _, ended in visits)


def test_cached_answers_from_the_record_without_asking_anyone(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bring_up(LAB_FILE, home)
    after_up = cached_status(lab_dir(home))
    assert after_up.seen.by == "up" and not after_up.live
    guests["kvm1"].conn.lookupByName(L2).suspend()
    live = lab_status(LabContext.load(lab_dir(home)))
    assert stat.S_IMODE(seen_path(lab_dir(home)).stat().st_mode) == 0o600

    def refuse(*_args: object) -> None:
        raise AssertionError("--cached asked libvirt or an L1")

    monkeypatch.setattr(labctx, "connect", refuse)
    monkeypatch.setattr(LinuxDriver, "session", refuse)
    cached = cached_status(lab_dir(home))
    assert cached.seen == live.seen and cached.seen.by == "status"
    assert cached.seen.hosts[0].guests == prime1("paused")
    assert not cached.live and cached.age >= 0
    assert after_up.seen.hosts[0].guests == prime1("running")


def test_cached_json_keeps_the_keys_and_says_how_old_it_is(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    bring_up(LAB_FILE, home)
    result = CliRunner().invoke(main, ["status", "--lab", "linux-nested", "--cached", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    [host] = status["hosts"]
    assert (host["name"], host["state"], host["address"]) == ("kvm1", "running", "10.77.0.10")
    assert host["guests"] == [{"name": "prime1", "domain": L2, "address": "192.168.100.10",
                               "state": "running"}]
    assert status["sandbox"] is None
    assert {t["phase"] for t in status["timings"]} >= {"ssh", "proven (SSH via kvm1)"}
    assert status["checked"]["by"] == "up" and status["checked"]["live"] is False
    assert status["checked"]["age_seconds"] >= 0 and status["checked"]["at"].endswith("Z")
    live = json.loads(CliRunner().invoke(main, ["status", "--lab", "linux-nested",
                                                "--json"]).output)
    assert live["checked"]["live"] is True and live["hosts"] == status["hosts"]


def test_cached_without_a_record_says_so(l0: libvirt.virConnect,
                                         guests: dict[str, FakeLinuxL1], home: Path) -> None:
    bring_up(LAB_FILE, home)
    seen_path(lab_dir(home)).unlink()  # a lab brought up before status was recorded
    with pytest.raises(NothingSeen, match="has no recorded status yet"):
        cached_status(lab_dir(home))
    lab_status(LabContext.load(lab_dir(home)))
    assert cached_status(lab_dir(home)).seen.by == "status"
    down(lab_dir(home), False, Reporter("linux-nested", lab_dir(home), "down", show=False),
         "test:///l0")
    assert not seen_path(lab_dir(home)).exists()
    with pytest.raises(NoSuchLab):
        cached_status(lab_dir(home))


def test_a_stopped_sandbox_asks_nobody(l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1],
                                       home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bring_up(LAB_FILE, home)
    ctx = LabContext.load(lab_dir(home))
    ctx = replace(ctx, record=replace(ctx.record, sandbox=True, netns="nestlab-nosuch"))
    monkeypatch.setattr(labctx, "connect", lambda _uri: pytest.fail("asked libvirt"))
    seen = lab_status(ctx).seen
    assert seen.hosts == (L1Seen("kvm1", L1, "debian-12", "sandbox not running", None,
                                 prime1("unknown")),)
    assert [n.state for n in seen.networks] == ["unknown"]


def test_timings_are_those_of_the_up_that_did_the_work(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    _proofs, first = bring_up(LAB_FILE, home)
    bring_up(LAB_FILE, home)  # nothing to do: every step ok in ~0 s
    guests["kvm1"].conn.lookupByName(L2).destroy()
    _proofs, third = bring_up(LAB_FILE, home)  # starts the L2 again, and proves it
    timings = {(t["guest"], t["phase"]): t["run"]
               for t in cached_status(lab_dir(home)).timings}
    assert timings[("kvm1", "define + start")] == first.run
    assert timings[("kvm1", "ssh")] == first.run  # waits never "change": the booting run's
    assert timings[("prime1", "define + start in kvm1")] == third.run
    assert timings[("prime1", "proven (SSH via kvm1)")] == third.run


def test_the_table_shows_the_age_of_a_recorded_status(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bring_up(LAB_FILE, home)
    report.print_status(cached_status(lab_dir(home)))
    out = capsys.readouterr().out
    assert "recorded: what `up` left 0 s ago" in out
    assert "10.77.0.10" in out and "when" in out

