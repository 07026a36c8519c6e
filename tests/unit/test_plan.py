"""The plan: stable names, addresses and CPU presets per OS, vendor and accel."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from nestlab.errors import HostCannotRunLab
from nestlab.host.check import check_host
from nestlab.plan import (
    Plan,
    bridge_name,
    mac_address,
    make_plan,
    plan_changes,
    plan_from_json,
    plan_to_json,
)
from tests.conftest import example, facts

LAB_DIR = Path("/var/lib/nestlab/labs/x")


def plan_for(lab_name: str, facts_name: str) -> Plan:
    lab = example(lab_name)
    return make_plan(lab, check_host(facts(facts_name), lab).decide(lab.name), LAB_DIR)


def test_tcg_linux_l1_gets_emulated_svm_and_one_vcpu() -> None:
    plan = plan_for("linux-nested", "this-machine-paravirtual-kvm")
    [host] = plan.hosts
    assert plan.accel == "tcg"
    assert host.domain_type == "qemu"
    assert (host.cpu.mode, host.cpu.model, host.cpu.require) == ("custom", "EPYC", ("svm",))
    assert host.cpus == 1


@pytest.mark.parametrize(("facts_name", "flag"), [("intel-nested-y", "vmx"),
                                                  ("amd-nested-1", "svm")])
def test_kvm_linux_l1_gets_host_passthrough_with_the_vendor_flag(
    facts_name: str, flag: str
) -> None:
    [host] = plan_for("linux-nested", facts_name).hosts
    assert host.domain_type == "kvm"
    assert host.cpu.mode == "host-passthrough"
    assert host.cpu.require == (flag,)
    assert host.cpu.disable == ()
    assert host.cpus == 2


def test_windows_on_intel_gets_evmcs_and_tsx_off() -> None:
    [host] = plan_for("windows-hyperv", "intel-nested-y").hosts
    assert host.evmcs
    assert host.cpu.require == ("vmx",)
    assert host.cpu.disable == ("hle", "rtm")
    assert host.cpus == 4


def test_windows_on_amd_never_gets_evmcs() -> None:
    [host] = plan_for("windows-hyperv", "amd-nested-1").hosts
    assert not host.evmcs
    assert host.cpu.require == ("svm",)


def test_addresses_are_stable_and_reserved() -> None:
    plan = plan_for("linux-nested", "intel-nested-y")
    [net] = plan.networks
    [host] = plan.hosts
    assert net.name == "nestlab-linux-nested-lab"
    assert len(net.bridge) <= 15
    assert net.gateway == ipaddress.IPv4Address("10.77.0.1")
    assert net.reservations == ((host.nics[0].mac, "kvm1", ipaddress.IPv4Address("10.77.0.10")),)
    assert host.nics[0].mac == mac_address("linux-nested", "kvm1", "lab")
    assert host.nics[0].mac.startswith("52:54:00:")
    [guest] = host.guests
    assert guest.ip == ipaddress.IPv4Address("192.168.100.10")
    assert guest.domain_name == "nestlab-linux-nested-prime1"
    assert host.guest_network.reservations == ((guest.mac, "prime1", guest.ip),)
    assert plan == plan_for("linux-nested", "intel-nested-y")  # deterministic


def test_names_differ_between_labs() -> None:
    assert bridge_name("a", "lab") != bridge_name("b", "lab")
    assert mac_address("a", "h", "n") != mac_address("b", "h", "n")


def test_a_host_that_cannot_run_the_lab_is_refused() -> None:
    lab = example("windows-hyperv")
    with pytest.raises(HostCannotRunLab, match="windows-accel"):
        check_host(facts("this-machine-paravirtual-kvm"), lab).decide(lab.name)


def test_the_plan_round_trips_through_json() -> None:
    for lab_name, facts_name in (("linux-nested", "amd-nested-1"),
                                 ("windows-hyperv", "intel-nested-y")):
        lab = example(lab_name)
        plan = make_plan(lab, check_host(facts(facts_name), lab).decide(lab.name), LAB_DIR,
                         "ssh-ed25519 AAAA k")
        assert plan_from_json(json.loads(json.dumps(plan_to_json(plan)))) == plan


def test_plan_changes_name_each_value_that_differs() -> None:
    lab = example("linux-nested")
    decision = check_host(facts("amd-nested-1"), lab).decide(lab.name)
    before = make_plan(lab, decision, LAB_DIR, "key one")
    bigger = lab.model_copy(update={"hosts": (lab.hosts[0].model_copy(update={
        "guests": (lab.hosts[0].guests[0].model_copy(update={"memory": 384 * 1024**2}),)}),)})
    assert plan_changes(before, make_plan(lab, decision, LAB_DIR, "key two")) == []
    assert plan_changes(before, make_plan(bigger, decision, LAB_DIR, "key one")) == [
        "hosts[0].guests[0].memory: 268435456 -> 402653184"]
