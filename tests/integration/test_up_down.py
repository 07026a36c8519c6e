"""up, status and down, the code that runs as root, run as plain tests (the lab on
libvirt's test driver with FAKE guests: tests/integration/conftest.py)."""

from __future__ import annotations

import json
import shlex
import stat
import threading
import time
from pathlib import Path

import libvirt
import pytest

from nestlab.commands.context import LabContext
from nestlab.commands.down import down
from nestlab.commands.plan import preview
from nestlab.commands.up import LabChanged
from nestlab.errors import NestlabError
from nestlab.host.check import check_host
from nestlab.lab.labfile import load_lab
from nestlab.plan import HostPlan
from nestlab.progress import Reporter
from nestlab.virt import objects
from nestlab.virt.connection import LibvirtError
from nestlab.waiting import Cancelled
from tests.conftest import EXAMPLES
from tests.fakes.linux import TESTDRIVER, FakeLinuxL1
from tests.integration.conftest import LAB_FILE, TWO_HOSTS, bring_up, host_facts, inventory


def test_up_then_up_again_changes_nothing(l0: libvirt.virConnect,
                                         guests: dict[str, FakeLinuxL1], home: Path) -> None:
    proofs, first = bring_up(LAB_FILE, home)
    assert [(p.guest, p.l1, p.address) for p in proofs] == [("prime1", "kvm1", "192.168.100.10")]
    assert "kernel 6.1.0-fake-amd64" in proofs[0].evidence
    assert first.counts()["changed"] >= 5 and first.counts()["failed"] == 0
    assert l0.lookupByName("nestlab-linux-nested-kvm1").isActive()
    l1 = guests["kvm1"]
    assert l1.domain_state("nestlab-linux-nested-prime1") == "running"
    assert l1.conn.networkLookupByName("nestlab-nat").isActive()

    seen = len(l1.calls)
    _proofs, second = bring_up(LAB_FILE, home)
    counts = second.counts()
    assert (counts["changed"], counts["failed"]) == (0, 0)
    assert second.summary() == f"0 changed, {counts['ok']} ok, {counts['skipped']} skipped"
    assert counts["ok"] >= 10 and counts["skipped"] == 1  # routes: its L2 network is nat
    acting = ("put ", "qemu-img", "systemctl start")
    verbs = {"define", "net-define", "start", "net-start", "resume", "net-autostart"}
    again = l1.calls[seen:]
    assert {v for c in l1.calls[:seen] for v in virsh_verbs(c)} >= verbs - {"resume"}
    assert [c for c in again if c.startswith(acting)] == []
    assert [c for c in again if set(virsh_verbs(c)) & verbs] == []


def virsh_verbs(call: str) -> list[str]:
    """The virsh commands of one call (several in one argument: ``'a x; b y'``)."""
    words = shlex.split(call)
    if words[:1] != ["virsh"]:
        return []
    return [part.split()[0] for part in " ".join(words[3:]).split(";") if part.strip()]


def test_second_up_counts_what_it_had_to_repair(l0: libvirt.virConnect,
                                                guests: dict[str, FakeLinuxL1],
                                                home: Path) -> None:
    bring_up(LAB_FILE, home)
    guests["kvm1"].conn.lookupByName("nestlab-linux-nested-prime1").suspend()
    _proofs, again = bring_up(LAB_FILE, home)
    changed = [(t["guest"], t["phase"]) for t in again.timings if t["outcome"] == "changed"]
    assert changed == [("prime1", "define + start in kvm1")]  # resumed, nothing else
    assert guests["kvm1"].domain_state("nestlab-linux-nested-prime1") == "running"


def test_files_are_private(l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1],
                           home: Path) -> None:
    bring_up(LAB_FILE, home)
    lab_dir = home / "labs" / "linux-nested"
    host_dir = lab_dir / "hosts" / "kvm1"

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    # Without a sandbox QEMU runs as its own user: it may enter the folders, not list them.
    assert mode(lab_dir) == 0o711 and mode(host_dir) == 0o711
    assert mode(lab_dir / "keys") == 0o700
    assert mode(lab_dir / "keys" / "id_ed25519") == 0o600
    for name in ("disk.qcow2", "console.log"):
        assert mode(host_dir / name) == 0o600, name
    assert mode(lab_dir / "lab.json") == 0o600
    assert mode(lab_dir / "plan.json") == 0o600


def test_down_removes_only_the_labs_objects(l0: libvirt.virConnect,
                                           guests: dict[str, FakeLinuxL1], home: Path) -> None:
    l0.networkDefineXML("<network><name>nestlab-linux-nested-decoy</name><bridge name='d0'/>"
                        "<ip address='10.98.0.1' netmask='255.255.255.0'/></network>")
    l0.defineXML("<domain type='test'><name>nestlab-linux-nested-other</name>"
                 "<memory>65536</memory><os><type>hvm</type></os></domain>")
    before = inventory(l0)
    bring_up(LAB_FILE, home)
    lab_dir = home / "labs" / "linux-nested"
    result = down(lab_dir, False, Reporter("linux-nested", lab_dir, "down", show=False),
                  "test:///l0")
    assert result.removed_domains == ["nestlab-linux-nested-kvm1"]
    assert result.removed_guests == ["prime1"]
    assert result.removed_networks == ["nestlab-linux-nested-lab"]
    assert inventory(l0) == before
    assert guests["kvm1"].domain_state("nestlab-linux-nested-prime1") is None
    assert not (lab_dir / "hosts").exists() and not (lab_dir / "lab.json").exists()
    assert (lab_dir / "keys" / "id_ed25519").exists()  # kept unless --purge
    down(lab_dir, True, Reporter("linux-nested", lab_dir, "down", show=False), "test:///l0")
    assert not lab_dir.exists()


def test_a_foreign_domain_with_the_labs_name_is_refused_before_anything(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    l0.defineXML("<domain type='test'><name>nestlab-linux-nested-kvm1</name>"
                 "<memory>65536</memory><os><type>hvm</type></os></domain>")
    before = inventory(l0)
    with pytest.raises(LibvirtError, match="exists and is not lab linux-nested's"):
        bring_up(LAB_FILE, home)
    assert inventory(l0) == before
    assert guests == {}


def test_a_dead_connection_is_a_failure_not_absence() -> None:
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(f"test://{TESTDRIVER}")
    conn.close()
    with pytest.raises(LibvirtError, match="looking up network nestlab-x-lab failed"):
        objects.refuse_foreign_names(conn, "x", ["nestlab-x-lab"], ["nestlab-x-kvm1"])


def test_a_crash_in_one_l1_stops_the_others_waits(l0: libvirt.virConnect,
                                                  guests: dict[str, FakeLinuxL1], home: Path,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    lab_file = tmp_path / "pair.yaml"
    lab_file.write_text(TWO_HOSTS)
    guests["kvm2"] = FakeLinuxL1("kvm2", reachable=False)  # would wait its whole timeout

    def broken(*_args: object) -> None:
        raise RuntimeError("a bug in provisioning")

    real_check_kvm = __import__("nestlab.provision.linux", fromlist=["check_kvm"]).check_kvm

    def check_kvm(t: FakeLinuxL1, host: HostPlan) -> str:
        if host.name == "kvm1":
            broken()
        return str(real_check_kvm(t, host))

    monkeypatch.setattr("nestlab.provision.linux.check_kvm", check_kvm)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="a bug in provisioning"):
        bring_up(lab_file, home)
    assert time.monotonic() - started < 30  # not kvm2's 300 s SSH timeout
    events = [json.loads(line) for line in
              (home / "labs" / "pair" / "events.jsonl").read_text().splitlines()]
    ssh = next(e for e in events if e["guest"] == "kvm2" and e["phase"] == "ssh")
    assert ssh["outcome"] == f"failed: {Cancelled.__name__}"


def test_ctrl_c_cancels_every_wait() -> None:
    cancel = threading.Event()
    l1 = FakeLinuxL1("kvm1", reachable=False)
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled, match="kvm1: SSH: stopped waiting"):
        l1.wait_until_reachable(600, cancel=cancel)
    assert time.monotonic() - started < 5


def test_a_guests_new_size_is_applied_and_anything_else_refused(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        tmp_path: Path) -> None:
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text(LAB_FILE.read_text())
    bring_up(lab_file, home)
    lab_file.write_text(LAB_FILE.read_text() + "# only a comment: the same lab\n")
    _proofs, again = bring_up(lab_file, home)
    assert again.counts()["changed"] == 0

    l1 = guests["kvm1"]
    prime = l1.conn.lookupByName("nestlab-linux-nested-prime1")
    before = prime.ID()
    lab_file.write_text(LAB_FILE.read_text().replace("memory: 256MiB", "memory: 384MiB"))
    _proofs, applied = bring_up(lab_file, home)
    changed = [(t["guest"], t["phase"]) for t in applied.timings if t["outcome"] == "changed"]
    assert changed == [("prime1", "define + start in kvm1")]  # nothing else restarted
    prime = l1.conn.lookupByName("nestlab-linux-nested-prime1")
    assert prime.isActive() and prime.ID() != before  # restarted
    assert prime.maxMemory() == 384 * 1024  # KiB: the new definition runs
    saved = LabContext.load(home / "labs" / "linux-nested").plan
    assert saved.hosts[0].guests[0].memory == 384 * 1024**2  # the plan follows, once applied

    lab_file.write_text(LAB_FILE.read_text().replace("memory: 256MiB", "memory: 384MiB")
                        .replace("10.77.0.0/24", "10.78.0.0/24"))
    with pytest.raises(LabChanged, match=r"up cannot apply:\n  hosts\[0\]\.nics\[0\]\.ip: "
                                         r"10\.77\.0\.10 -> 10\.78\.0\.10\n") as info:
        bring_up(lab_file, home)
    assert "networks[0].gateway: 10.77.0.1 -> 10.78.0.1" in info.value.message
    assert "memory" not in info.value.message  # applied already: not a difference
    # Nothing was mixed in: the lab still runs from the plan it was made with.
    saved = LabContext.load(home / "labs" / "linux-nested").plan
    assert str(saved.networks[0].gateway) == "10.77.0.1"


def test_an_l1s_new_size_restarts_it(l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1],
                                     home: Path, tmp_path: Path) -> None:
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text(LAB_FILE.read_text())
    bring_up(lab_file, home)
    before = l0.lookupByName("nestlab-linux-nested-kvm1").ID()
    lab_file.write_text(LAB_FILE.read_text().replace("memory: 3GiB", "memory: 4GiB"))
    bring_up(lab_file, home)
    kvm1 = l0.lookupByName("nestlab-linux-nested-kvm1")
    assert kvm1.isActive() and kvm1.ID() != before
    assert kvm1.maxMemory() == 4 * 1024**2


def plan_states(lab_file: Path, home: Path) -> dict[tuple[str, str], str]:
    lab = load_lab(lab_file)
    decision = check_host(host_facts(""), lab, "host").decide(lab.name)
    result = preview(lab, decision, home / "labs" / lab.name, "test:///l0", False)
    return {(s.guest, s.step): s.state for s in result.steps}


def test_plan_before_up_creates_nothing_and_lists_what_up_would_make(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        tmp_path: Path) -> None:
    lab_file = tmp_path / "pair.yaml"
    lab_file.write_text(TWO_HOSTS)
    before = inventory(l0)
    states = plan_states(lab_file, home)
    assert states[("L0", "image debian-12")] == "present"  # the fixture's cache
    assert states[("L0", "network nestlab-pair-lab")] == "create"
    for host in ("kvm1", "kvm2"):
        assert states[(host, "disk")] == "create"
        assert states[(host, "define + start")] == "create"
        assert states[(host, "ssh")] == "unknown"  # inside an L1 up has to reach first
    assert states[("kvm2", "L2 network")] == "skipped"  # kvm2 has no L2s
    assert states[("prime1", "proven (SSH via kvm1)")] == "unknown"
    assert inventory(l0) == before and guests == {}
    assert not (home / "labs" / "pair").exists()  # planning writes nothing


def test_plan_after_up_shows_only_what_is_missing(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        tmp_path: Path) -> None:
    lab_file = tmp_path / "pair.yaml"
    lab_file.write_text(TWO_HOSTS)
    _proofs, first = bring_up(lab_file, home)
    assert first.counts()["skipped"] == 4  # kvm2: L2 network, QEMU probe; both: routes (nat)
    states = plan_states(lab_file, home)
    assert [k for k, v in states.items() if v == "create"] == []
    assert {k for k, v in states.items() if v == "present"} >= {
        ("L0", "network nestlab-pair-lab"), ("kvm1", "disk"), ("kvm1", "define + start"),
        ("kvm2", "disk"), ("kvm2", "define + start")}
    l0.lookupByName("nestlab-pair-kvm2").destroy()
    states = plan_states(lab_file, home)
    assert [k for k, v in states.items() if v == "create"] == [("kvm2", "define + start")]


def test_routed_l1s_get_routes_to_each_others_l2s(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    bring_up(EXAMPLES / "routed-pair.yaml", home)
    assert guests["kvm1"].routes == {"192.168.101.0/24": "10.78.0.11"}
    assert guests["kvm2"].routes == {"192.168.100.0/24": "10.78.0.10"}
    net = guests["kvm1"].conn.networkLookupByName("nestlab-routed")
    assert "<forward mode='route'/>" in net.XMLDesc(0)
    _proofs, again = bring_up(EXAMPLES / "routed-pair.yaml", home)
    assert again.counts()["changed"] == 0
    del guests["kvm2"].routes["192.168.100.0/24"]  # as after kvm2 restarted
    _proofs, repaired = bring_up(EXAMPLES / "routed-pair.yaml", home)
    assert [(t["guest"], t["phase"]) for t in repaired.timings if t["outcome"] == "changed"] \
        == [("kvm2", "routes to other L1s' L2s")]


def test_an_l2_its_l1_does_not_start_fails_up_with_virshs_words_and_up_again_mends_it(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """define + start go to the L1 in one virsh, whose exit status is the last command's
    (a read of the state): the step checks the state, not the status."""
    answer = FakeLinuxL1._virsh_call

    def refusing(self: FakeLinuxL1, args: list[str]) -> tuple[int, str, str]:
        if args[:1] == ["start"]:
            return 1, "", "error: Failed to start domain 'x'\nerror: no room\n"
        return answer(self, args)

    monkeypatch.setattr(FakeLinuxL1, "_virsh_call", refusing)
    with pytest.raises(NestlabError) as failed:
        bring_up(LAB_FILE, home)
    assert str(failed.value) == ("kvm1: could not get prime1 running in the L1:\n"
                                 "  error: Failed to start domain 'x'\n  error: no room")
    l1 = guests["kvm1"]
    assert l1.domain_state("nestlab-linux-nested-prime1") == "shut off"
    monkeypatch.setattr(FakeLinuxL1, "_virsh_call", answer)
    bring_up(LAB_FILE, home)
    assert l1.domain_state("nestlab-linux-nested-prime1") == "running"
