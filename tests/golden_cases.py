"""The rendering cases kept as golden files, shared by unit and integration tests."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from nestlab.hostcheck import check_host
from nestlab.plan import make_plan
from nestlab.render import render_artifacts
from tests.conftest import example, facts

# case name -> (example lab, recorded host facts)
CASES = {
    "linux-nested-tcg": ("linux-nested", "this-machine-paravirtual-kvm"),
    "linux-nested-kvm-intel": ("linux-nested", "intel-nested-y"),
    "linux-nested-kvm-amd": ("linux-nested", "amd-nested-1"),
    "windows-hyperv-kvm-intel": ("windows-hyperv", "intel-nested-y"),
    "windows-hyperv-kvm-amd": ("windows-hyperv", "amd-nested-1"),
}


def render_case(case: str) -> dict[PurePosixPath, str]:
    lab_name, facts_name = CASES[case]
    lab = example(lab_name)
    plan = make_plan(lab, check_host(facts(facts_name), lab),
                     Path("/var/lib/nestlab/labs") / lab.name)
    return render_artifacts(plan)
