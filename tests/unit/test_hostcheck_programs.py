"""The host check on the programs nestlab runs: recorded and constructed facts, no I/O."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nestlab import programs
from nestlab.cli import main
from nestlab.host import facts as hostfacts
from nestlab.host.check import Check, HostReport, Status, check_host
from nestlab.host.facts import HostFacts, load_facts, read_programs
from nestlab.programs import runtime_programs
from tests.conftest import EXAMPLES, FACTS, facts

MISSING = "intel-no-dnsmasq-no-mmdebstrap"  # dnsmasq and mmdebstrap recorded as null


def by_name(report: HostReport) -> dict[str, Check]:
    return {c.name: c for c in report.checks}


def with_programs(name: str, found: dict[str, str | None]) -> HostFacts:
    return facts(name).model_copy(update={"programs": found})


def all_present() -> dict[str, str | None]:
    return {p.name: f"/usr/bin/{p.name}" for p in runtime_programs()}


def test_missing_dnsmasq_fails_with_the_package_to_install() -> None:
    report = check_host(facts(MISSING), None)
    check = by_name(report)["programs"]
    assert check.status is Status.fail
    assert check.detail.startswith("missing for every `nestlab up`: dnsmasq: ")
    assert check.fix == "sudo apt-get install dnsmasq-base"
    assert not report.can_run  # so `up` refuses before it starts anything


def test_a_program_only_image_build_needs_warns() -> None:
    other = by_name(check_host(facts(MISSING), None))["programs-other"]
    assert other.status is Status.warn
    assert other.detail == "missing: mmdebstrap for nestlab image build"
    assert other.fix == "sudo apt-get install mmdebstrap"


def test_the_lab_cannot_run_and_check_exits_1_with_the_fix() -> None:
    result = CliRunner().invoke(main, ["check", "-f", str(EXAMPLES / "linux-nested.yaml"),
                                       "--facts", str(FACTS / f"{MISSING}.json")])
    assert result.exit_code == 1
    assert "sudo apt-get install dnsmasq-base" in result.stdout


def test_every_program_present_is_one_ok_check() -> None:
    report = check_host(with_programs("intel-nested-y", all_present()), None)
    assert by_name(report)["programs"].status is Status.ok
    assert "programs-other" not in by_name(report)
    assert report.can_run


def test_the_sandbox_and_access_programs_warn_and_the_fix_names_each_package_once() -> None:
    found = all_present() | {"ip": None, "libvirtd": None, "virtlogd": None, "ssh": None,
                             "iptables": None}
    checks = by_name(check_host(with_programs("intel-nested-y", found), None))
    assert checks["programs"].status is Status.ok
    other = checks["programs-other"]
    assert other.status is Status.warn
    assert "iptables for libvirt's lab networks (unless libvirt uses firewalld)" in other.detail
    assert "ip for nestlab up --sandbox" in other.detail
    assert other.fix == "sudo apt-get install iproute2 iptables libvirt-daemon openssh-client"


def test_qemu_is_left_to_the_qemu_check() -> None:
    found = all_present() | {"qemu-system-x86_64": None}
    recorded = with_programs("intel-nested-y", found).model_copy(update={"qemu_binary": None})
    checks = by_name(check_host(recorded, None))
    assert checks["qemu"].status is Status.fail
    assert checks["programs"].status is Status.ok  # reported once, by "qemu"


def test_a_program_that_was_not_looked_for_is_not_judged() -> None:
    found = {"qemu-img": "/usr/bin/qemu-img"}  # recorded by a nestlab that knew fewer
    checks = by_name(check_host(with_programs("intel-nested-y", found), None))
    assert checks["programs"].status is Status.ok
    assert "programs-other" not in checks


def test_facts_recorded_before_programs_still_load_and_give_no_verdict() -> None:
    old = facts("intel-nested-y")
    assert old.programs is None
    assert not {"programs", "programs-other"} & set(by_name(check_host(old, None)))


def test_programs_survive_a_round_trip_through_the_facts_file(tmp_path: Path) -> None:
    recorded = facts(MISSING)
    assert recorded.programs is not None and recorded.programs["dnsmasq"] is None
    path = tmp_path / "facts.json"
    path.write_text(recorded.model_dump_json(indent=2))
    assert load_facts(path) == recorded


def test_read_programs_looks_for_each_runtime_program(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostfacts, "locate", lambda name: None if name == "dnsmasq"
                        else programs.locate(name))
    found = read_programs()
    assert set(found) == {p.name for p in runtime_programs()}
    assert "xmllint" not in found  # the tests' programs are not nestlab's
    assert found["dnsmasq"] is None
    assert found["mount"] is not None and found["mount"].endswith("/mount")
