"""The Windows L1 provisioning sequence, replayed against a FAKE Hyper-V L1
(tests/fakes/hyperv.py): the role with its reboots, the NAT switch, the L2s,
their proof; a crash and a second run; a processor without virtualization."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from nestlab.host.check import check_host
from nestlab.lab.model import GuestNetworkMode
from nestlab.plan import HostPlan, make_plan
from nestlab.progress import Reporter
from nestlab.provision import windows
from nestlab.render import WINDOWS_PROVISION_SCRIPTS
from nestlab.transport.base import TransportError
from tests.conftest import example, facts
from tests.fakes.hyperv import FakeHyperVL1


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(windows, "_sleep", lambda _s: None)


@pytest.fixture
def host(tmp_path: Path) -> HostPlan:
    lab = example("windows-hyperv")
    plan = make_plan(lab, check_host(facts("intel-nested-y"), lab).decide(lab.name), tmp_path, "ssh-ed25519 K")
    return plan.hosts[0]


@pytest.fixture
def isos(tmp_path: Path, host: HostPlan) -> dict[str, Path]:
    out = {}
    for guest in host.guests:
        out[guest.name] = tmp_path / f"{guest.name}.iso"
        out[guest.name].write_bytes(f"iso of {guest.name}".encode())
    return out


def run(l1: FakeHyperVL1, host: HostPlan, isos: dict[str, Path], tmp_path: Path) -> Reporter:
    reporter = Reporter("windows-hyperv", tmp_path, "up", show=False)
    windows.provision(l1, host, isos, reporter, reboot_timeout=600)
    return reporter


def test_fresh_l1_gets_hyperv_network_and_guests(host: HostPlan, isos: dict[str, Path],
                                                 tmp_path: Path) -> None:
    l1 = FakeHyperVL1()
    run(l1, host, isos, tmp_path)
    assert l1.role == "Installed"
    assert l1.restarts == 2  # the role needed two restarts, the first seen going down slowly
    assert l1.calls[:3] == ["hyperv-state", "preflight", "install-hyperv"]
    assert l1.creations == [
        "role", "switch nestlab", "address 192.168.100.1/24", "nat 192.168.100.0/24",
        "folder C:\\nestlab\\prime1", "vm prime1", "folder C:\\nestlab\\prime2", "vm prime2"]
    # The ISO's folder is made before the copy (pypsrp's copy makes none).
    assert l1.calls[l1.calls.index("put C:\\nestlab\\prime1\\prime.iso") - 2:][:2] == [
        "guest-folder", "file-hash"]
    vm = l1.vms["prime1"].parameters
    assert vm["MemoryBytes"] == 512 * 1024**2
    assert vm["DiskBytes"] == 1024**3
    assert vm["IsoPath"] == "C:\\nestlab\\prime1\\prime.iso"
    assert vm["MacAddress"] == host.guests[0].mac.replace(":", "").upper()
    assert vm["MacSpoofing"] is False


def test_provisioning_runs_the_scripts_render_writes(host: HostPlan, isos: dict[str, Path],
                                                    tmp_path: Path) -> None:
    l1 = FakeHyperVL1(heartbeat_after_polls=0)
    run(l1, host, isos, tmp_path)
    for guest in host.guests:
        windows.prove(l1, host, guest, 600, lambda _m: None)
    assert {c for c in l1.calls if not c.startswith("put ")} == set(WINDOWS_PROVISION_SCRIPTS)


def test_second_run_changes_nothing(host: HostPlan, isos: dict[str, Path],
                                    tmp_path: Path) -> None:
    l1 = FakeHyperVL1()
    first = run(l1, host, isos, tmp_path)
    assert first.counts() == {"changed": 4, "ok": 0, "skipped": 0, "failed": 0}  # role,
    # network, 2 L2s
    created, copies = list(l1.creations), [c for c in l1.calls if c.startswith("put")]
    l1.calls.clear()
    second = run(l1, host, isos, tmp_path)
    assert second.summary() == "0 changed, 4 ok"
    assert l1.creations == created
    assert not [c for c in l1.calls if c.startswith("put")]  # the ISOs are there already
    assert len(copies) == 2
    assert "restart" not in l1.calls and "install-hyperv" not in l1.calls


def test_each_step_says_what_it_made_and_a_second_time_nothing(
        host: HostPlan, isos: dict[str, Path]) -> None:
    l1 = FakeHyperVL1()
    windows.ensure_hyperv(l1, 600, lambda _m: None)
    guest = host.guests[0]
    assert windows.ensure_guest_network(l1, host) == ["switch", "address", "nat"]
    assert windows.ensure_guest(l1, host, guest, isos[guest.name]) == [
        "folder", "prime.iso", "VM", "started"]
    assert windows.ensure_guest_network(l1, host) == []
    assert windows.ensure_guest(l1, host, guest, isos[guest.name]) == []
    l1.vms[guest.name].state = "Off"
    assert windows.ensure_guest(l1, host, guest, isos[guest.name]) == ["started"]


@pytest.mark.parametrize("step", ["install-hyperv", "guest-network", "guest-folder", "guest-vm"])
def test_a_crash_then_a_second_up_converges(step: str, host: HostPlan, isos: dict[str, Path],
                                            tmp_path: Path) -> None:
    l1 = FakeHyperVL1(fail_once_at=step)
    with pytest.raises(TransportError, match=f"lost the WinRM session during {step}"):
        run(l1, host, isos, tmp_path)
    run(l1, host, isos, tmp_path)
    assert l1.role == "Installed"
    assert l1.creations.count("switch nestlab") == 1
    assert sorted(l1.vms) == ["prime1", "prime2"]
    assert l1.creations.count("vm prime1") == 1


def test_guests_are_proven_by_heartbeat_and_ssh(host: HostPlan, isos: dict[str, Path],
                                                tmp_path: Path) -> None:
    l1 = FakeHyperVL1(heartbeat_after_polls=3)
    run(l1, host, isos, tmp_path)
    heard: list[str] = []
    proof = windows.prove(l1, host, host.guests[0], 600, heard.append)
    assert (proof.state, proof.heartbeat, proof.ssh) == ("Running", "OK", True)
    assert proof.address == "192.168.100.10"
    assert len(heard) == 3


def test_a_guest_that_never_answers_is_not_proven(host: HostPlan, isos: dict[str, Path],
                                                  tmp_path: Path) -> None:
    l1 = FakeHyperVL1(heartbeat_after_polls=10**6)
    run(l1, host, isos, tmp_path)
    with pytest.raises(windows.WindowsProvisionError, match=r"prime1: proof in hv1: timed out after 0s \(last: state Running, "
                             r"heartbeat No Contact, SSH down\)"):
        windows.prove(l1, host, host.guests[0], 0, lambda _m: None)


def test_no_virtualization_in_the_l1_is_explained_by_the_failed_launch(
        host: HostPlan, isos: dict[str, Path], tmp_path: Path) -> None:
    l1 = FakeHyperVL1(vmx=False)
    with pytest.raises(windows.WindowsProvisionError) as caught:
        run(l1, host, isos, tmp_path)
    assert str(caught.value) == (
        "hv1: Hyper-V does not run: its hypervisor did not start in this boot (Hypervisor "
        "launch failed; Either VMX not present or not enabled in BIOS.); HypervisorPresent "
        "is True, as in any KVM guest: that is KVM, not Hyper-V")
    assert "nestlab check" in (caught.value.hint or "")
    assert l1.creations == ["role"]  # the preflight only warned
    assert l1.restarts == 2  # a failed launch is not restarted again


def test_hypervisor_present_in_a_kvm_guest_is_not_taken_for_hyperv() -> None:
    # Windows reports VMX, the role installs, but the hypervisor cannot launch: the old
    # check (role Installed and HypervisorPresent) passed here, as KVM sets that bit.
    l1 = FakeHyperVL1(slat=False, wmi_slat=True)
    with pytest.raises(windows.WindowsProvisionError,
                       match=r"did not start in this boot \(Hypervisor launch failed; Second "
                             r"Level Address Translation is required"):
        windows.ensure_hyperv(l1, 600, lambda _m: None)
    assert l1.role == "Installed"


def test_a_role_installed_without_its_hypervisor_running_gets_a_restart() -> None:
    l1 = FakeHyperVL1(role="Installed")  # e.g. a base image whose role came with it
    assert windows.ensure_hyperv(l1, 600, lambda _m: None) is True
    assert l1.restarts == 1
    assert l1.launches == {2: ""}
    assert windows.ensure_hyperv(l1, 600, lambda _m: None) is False  # now it runs


def test_the_preflight_only_warns() -> None:
    # Whether Windows in a KVM guest reports these flags is unverified: the launch decides.
    l1 = FakeHyperVL1(wmi_vmx=False, wmi_slat=False)
    heard: list[str] = []
    assert windows.ensure_hyperv(l1, 600, heard.append) is True
    assert heard[0] == (
        "warning: Windows reports VMMonitorModeExtensions and "
        "SecondLevelAddressTranslationExtensions False; under KVM this may be wrong, so the "
        "role is installed anyway and its hypervisor's start decides")
    assert l1.role == "Installed" and l1.launches[l1.boot] == ""


def test_vmms_starting_late_is_waited_for_not_restarted() -> None:
    l1 = FakeHyperVL1(vmms_pending_polls=2)
    assert windows.ensure_hyperv(l1, 600, lambda _m: None) is True
    assert l1.restarts == 2
    assert l1.calls[-3:] == ["hyperv-state"] * 3  # StartPending twice, then Running


def test_vmms_that_never_runs_is_not_hyperv_running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(windows, "VMMS_TIMEOUT", 0)
    l1 = FakeHyperVL1(vmms_pending_polls=10**6)
    with pytest.raises(windows.WindowsProvisionError,
                       match=r"hv1: Hyper-V's vmms service running: timed out after 0s "
                             r"\(last: the vmms service is StartPending\)"):
        windows.ensure_hyperv(l1, 600, lambda _m: None)


def test_a_role_that_never_finishes_gets_max_reboots_restarts_no_more() -> None:
    l1 = FakeHyperVL1(reboots_to_finish=10)
    with pytest.raises(windows.WindowsProvisionError) as caught:
        windows.ensure_hyperv(l1, 600, lambda _m: None)
    assert l1.restarts == windows.MAX_REBOOTS == 3
    assert str(caught.value).startswith(
        "hv1: Hyper-V is still not running after 3 restarts: the role is InstallPending")


def bridged(host: HostPlan) -> HostPlan:
    network = replace(host.guest_network, mode=GuestNetworkMode.bridged, cidr=None,
                      gateway=None, netmask=None)
    return replace(host, guest_network=network)


@pytest.mark.parametrize("answers_first", [False, True])
def test_an_external_switch_drops_the_session_and_the_step_resumes(
        answers_first: bool, host: HostPlan) -> None:
    # The session is lost during the script, or (answers_first) at the next call.
    l1 = FakeHyperVL1(switch_answers_before_drop=answers_first)
    windows.ensure_hyperv(l1, 600, lambda _m: None)
    reconnects = l1.reconnects
    assert windows.ensure_guest_network(l1, bridged(host)) == ["switch"]
    assert l1.reconnects == reconnects + 1
    assert l1.calls[-2:] == ["guest-network", "guest-network"]  # made, then confirmed
    assert not l1.session_lost
    assert l1.creations.count("switch nestlab") == 1
    assert windows.ensure_guest_network(l1, bridged(host)) == []
    assert l1.reconnects == reconnects + 1


@pytest.mark.parametrize("answers_first", [False, True])
def test_a_bridged_l1_is_provisioned_in_one_run(answers_first: bool, host: HostPlan,
                                                isos: dict[str, Path], tmp_path: Path) -> None:
    l1 = FakeHyperVL1(switch_answers_before_drop=answers_first)
    first = run(l1, bridged(host), isos, tmp_path)
    assert first.counts() == {"changed": 4, "ok": 0, "skipped": 0, "failed": 0}
    assert l1.switches == {"nestlab": {"mode": "bridged"}}
    assert l1.vms["prime1"].parameters["MacSpoofing"] is True
    assert run(l1, bridged(host), isos, tmp_path).summary() == "0 changed, 4 ok"


def test_down_removes_the_guests(host: HostPlan, isos: dict[str, Path], tmp_path: Path) -> None:
    l1 = FakeHyperVL1()
    run(l1, host, isos, tmp_path)
    windows.remove_guests(l1, host)
    assert l1.vms == {}


def test_a_restarted_l2_is_a_new_boot_and_proven_again(host: HostPlan, isos: dict[str, Path],
                                                       tmp_path: Path) -> None:
    l1 = FakeHyperVL1()
    run(l1, host, isos, tmp_path)
    guest = host.guests[0]
    windows.prove(l1, host, guest, 600, lambda _m: None)
    windows.restart_guest(l1, guest)
    assert l1.vms[guest.name].boots == 2 and l1.vms[host.guests[1].name].boots == 1
    waits: list[str] = []
    proof = windows.prove(l1, host, guest, 600, waits.append)
    assert (proof.state, proof.heartbeat) == ("Running", "OK")
    assert waits  # the new boot had no heartbeat at first


def test_restarting_an_l2_that_is_not_there_says_so(host: HostPlan) -> None:
    with pytest.raises(windows.WindowsProvisionError,
                       match=r"hv1: guest-restart\.ps1 failed: Get-VM : Hyper-V was unable to "
                             r"find a virtual machine with name \"prime1\""):
        windows.restart_guest(FakeHyperVL1(), host.guests[0])


def test_a_removed_l2_is_made_again_from_a_new_disk(host: HostPlan, isos: dict[str, Path],
                                                    tmp_path: Path) -> None:
    l1 = FakeHyperVL1()
    run(l1, host, isos, tmp_path)
    guest = host.guests[0]
    assert windows.remove_guest(l1, guest) == ["VM", "disk"]
    assert guest.name not in l1.vms
    assert windows.remove_guest(l1, guest) == []  # nothing left to remove
    seen = len(l1.calls)
    run(l1, host, isos, tmp_path)
    assert l1.creations[-1] == "vm prime1"
    assert l1.vms[guest.name].state == "Running"
    assert not any(c.startswith("put ") for c in l1.calls[seen:])  # the ISO is still there


def test_l2s_are_shut_down_before_a_baseline_and_a_stubborn_one_turned_off(
        host: HostPlan, isos: dict[str, Path], tmp_path: Path) -> None:
    l1 = FakeHyperVL1()
    run(l1, host, isos, tmp_path)
    stubborn = host.guests[1].name
    l1.ignores_shutdown.add(stubborn)
    assert windows.stop_guests(l1, host, 30) == [stubborn]
    assert {vm.state for vm in l1.vms.values()} == {"Off"}
    assert windows.stop_guests(l1, host, 30) == []  # nothing running: nothing to do


def test_l2s_are_paused_before_the_l1_is_saved_and_resumed_after_with_its_clock_set(
        host: HostPlan, isos: dict[str, Path], tmp_path: Path) -> None:
    l1 = FakeHyperVL1()
    run(l1, host, isos, tmp_path)
    off = host.guests[1].name
    windows.stop_guests(l1, replace(host, guests=[host.guests[1]]), 30)
    on = host.guests[0].name
    assert windows.pause_guests(l1, host) == [on]  # an L2 that is off stays off
    assert (l1.vms[on].state, l1.vms[off].state) == ("Paused", "Off")
    boots = l1.vms[on].boots
    assert windows.resume_guests(l1, host) == [on]
    assert (l1.vms[on].state, l1.vms[off].state) == ("Running", "Off")
    assert l1.vms[on].boots == boots  # resumed, not booted again
    assert l1.clock is not None and abs(l1.clock - time.time()) < 60
    assert windows.resume_guests(l1, host) == []  # nothing paused: nothing to do
