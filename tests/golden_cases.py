"""The rendering cases kept as golden files, shared by unit and integration tests."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from nestlab.hostcheck import check_host
from nestlab.plan import make_plan
from nestlab.render import render_artifacts
from nestlab.winimage import build_plan, render_install_domain_xml
from tests.conftest import example, facts

# case name -> (example lab, recorded host facts)
LAB_CASES = {
    "linux-nested-tcg": ("linux-nested", "this-machine-paravirtual-kvm"),
    "linux-nested-kvm-intel": ("linux-nested", "intel-nested-y"),
    "linux-nested-kvm-amd": ("linux-nested", "amd-nested-1"),
    "windows-hyperv-kvm-intel": ("windows-hyperv", "intel-nested-y"),
    "windows-hyperv-kvm-amd": ("windows-hyperv", "amd-nested-1"),
}
# case name -> recorded host facts, for the domain that installs the Windows base image
INSTALL_CASES = {
    "windows-install-kvm-intel": "intel-nested-y",
    "windows-install-kvm-amd": "amd-nested-1",
}
CASES = sorted([*LAB_CASES, *INSTALL_CASES])


def render_case(case: str) -> dict[PurePosixPath, str]:
    if case in INSTALL_CASES:
        report = check_host(facts(INSTALL_CASES[case]))
        plan = build_plan(report, "0123456789abcdef", "standard",
                          Path("/var/cache/nestlab/images/windows-server-2016/build"),
                          Path("/srv/iso/WindowsServer2016.iso"))
        return {PurePosixPath("l0/domains", f"{plan.name}.xml"): render_install_domain_xml(plan)}
    lab_name, facts_name = LAB_CASES[case]
    lab = example(lab_name)
    plan = make_plan(lab, check_host(facts(facts_name), lab),
                     Path("/var/lib/nestlab/labs") / lab.name)
    return render_artifacts(plan)
