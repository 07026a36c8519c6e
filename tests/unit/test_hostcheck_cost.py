"""`check` says what a lab costs on this host under emulation: how many times longer
than one L1 alone its L1s take when their vCPUs share the host's CPUs."""

from __future__ import annotations

import json

from nestlab.host.check import Status, check_host, emulation_stretch
from nestlab.lab.labfile import parse_lab
from nestlab.lab.model import GiB, Lab
from nestlab.report import check_json
from tests.unit.test_hostcheck_seats import host


def l1s(count: int) -> Lab:
    hosts = "".join(f"  - name: kvm{i}\n    os: debian-12\n    memory: 1GiB\n"
                    f"    networks: [lab]\n" for i in range(1, count + 1))
    return parse_lab(f"lab: cost\nnetworks:\n  - name: lab\n    cidr: 10.85.0.0/24\n"
                     f"hosts:\n{hosts}")


def test_four_l1s_on_two_cpus_cost_what_issue_13_measured() -> None:
    assert 2.7 <= emulation_stretch(4, 2) <= 2.9  # measured: up 207-222 s, 2.7-2.9x one L1
    assert emulation_stretch(1, 2) == 1.0
    assert emulation_stretch(8, 2) > emulation_stretch(4, 2)


def test_check_says_the_cost_in_a_line_and_in_json() -> None:
    report = check_host(host(2, 64 * GiB), l1s(4), "sandbox")
    assert report.accel == "tcg"
    cost = next(c for c in report.checks if c.name == "cost")
    assert cost.status is Status.warn
    assert cost.detail.startswith("under emulation 4 L1 hosts (4 vCPUs) on 2 CPUs: expect "
                                  "`up` and every guest phase to take about 2.8x")
    shown = json.loads(json.dumps(check_json(report, l1s(4))))
    assert shown["stretch"] == 2.8
    assert "cost" in [c["name"] for c in shown["checks"]]


def test_one_l1_with_cpus_to_spare_costs_nothing_extra() -> None:
    report = check_host(host(2, 64 * GiB), l1s(1), "sandbox")
    assert report.stretch == 1.0
    assert next(c for c in report.checks if c.name == "cost").status is Status.ok


def test_no_cost_line_without_a_lab_or_without_a_cpu_count() -> None:
    assert check_host(host(2, 64 * GiB), None, "sandbox").stretch is None
    report = check_host(host(None, 64 * GiB), l1s(4), "sandbox")
    assert report.stretch is None and "cost" not in {c.name for c in report.checks}


def test_one_l1_and_one_vcpu_are_said_in_the_singular() -> None:
    report = check_host(host(1, 64 * GiB), l1s(1), "sandbox")
    assert next(c for c in report.checks if c.name == "cost").detail.startswith(
        "under emulation 1 L1 host (1 vCPU) on 1 CPU: expect")
