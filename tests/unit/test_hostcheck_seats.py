"""The host check and the `up` budget count every seat of a lab."""

from __future__ import annotations

from pathlib import Path

from nestlab.host.check import Status, check_host, seats_at_once
from nestlab.host.facts import HostFacts, read_cpu
from nestlab.lab.labfile import parse_lab
from nestlab.lab.model import GiB, Lab
from tests.conftest import example_text, facts
from tests.unit.test_hostfacts import make_tree


def host(cpus: int | None, available: int) -> HostFacts:
    recorded = facts("this-machine-paravirtual-kvm")
    return recorded.model_copy(update={
        "cpu": recorded.cpu.model_copy(update={"count": cpus}),
        "resources": recorded.resources.model_copy(update={"mem_available": available})})


def seated(seats: int | None) -> Lab:
    text = example_text("linux-nested").replace("memory: 3GiB", "memory: 1GiB")
    return parse_lab(text + (f"seats: {seats}\n" if seats else ""))


def check(name: str, facts_: HostFacts, lab: Lab) -> tuple[Status, str]:
    found = next(c for c in check_host(facts_, lab, "sandbox").checks if c.name == name)
    return found.status, found.detail


def test_facts_count_the_processors(tmp_path: Path) -> None:
    assert read_cpu(make_tree(tmp_path, None, {})).count == 2


def test_memory_counts_every_seat() -> None:
    assert check("memory", host(2, 4 * GiB), seated(None))[0] is Status.ok
    assert check("memory", host(2, 4 * GiB), seated(3)) == (
        Status.ok, "the L1 hosts of 3 seats need 3.0GiB of 4.0GiB available")
    status, detail = check("memory", host(2, 4 * GiB), seated(5))
    assert status is Status.fail
    assert detail == "the L1 hosts of 5 seats need 5.0GiB, 4.0GiB is available"
    assert not check_host(host(2, 4 * GiB), seated(5), "sandbox").can_run


def test_vcpus_of_every_seat_beyond_the_hosts_cpus_are_a_warning() -> None:
    assert check("cpus", host(2, 64 * GiB), seated(2)) == (
        Status.ok, "the L1 hosts of 2 seats have 2 vCPUs of the host's 2 CPUs")
    status, detail = check("cpus", host(2, 64 * GiB), seated(3))
    assert status is Status.warn and "3 vCPUs, the host 2 CPUs" in detail
    assert check_host(host(2, 64 * GiB), seated(3), "sandbox").can_run
    assert "cpus" not in {c.name for c in check_host(host(None, 64 * GiB), seated(3)).checks}


def test_seats_at_once_fit_the_cpus_and_the_memory() -> None:
    lab = seated(10)  # 1 L1 of 1 vCPU (tcg), 1 GiB
    assert seats_at_once(host(2, 64 * GiB), lab, "tcg", 10) == 2
    assert seats_at_once(host(2, 64 * GiB), lab, "kvm", 10) == 1  # 2 vCPUs under kvm
    assert seats_at_once(host(16, 3 * GiB), lab, "tcg", 10) == 3
    assert seats_at_once(host(64, 640 * GiB), lab, "tcg", 10) == 8
    assert seats_at_once(host(64, 640 * GiB), lab, "tcg", 2) == 2
    assert seats_at_once(host(None, 64 * GiB), lab, "tcg", 10) == 1
    assert seats_at_once(host(1, 0), lab, "kvm", 10) == 1  # at least one


def test_one_vcpu_and_one_cpu_are_said_in_the_singular() -> None:
    assert check("cpus", host(1, 64 * GiB), seated(None)) == (
        Status.ok, "the L1 hosts have 1 vCPU of the host's 1 CPU")
    assert check("cpus", host(2, 64 * GiB), seated(1))[1] == (
        "the L1 hosts of 1 seat have 1 vCPU of the host's 2 CPUs")
