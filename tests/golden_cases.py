"""The rendering cases kept as golden files, shared by unit and integration tests."""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from nestlab.build.winimage import build_plan, render_install_domain_xml
from nestlab.host.check import check_host
from nestlab.lab.systems import OS
from nestlab.plan import make_plan
from nestlab.render import render_artifacts, write_artifacts
from tests.conftest import example, facts

TEST_PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
                   " nestlab-golden")
"""A fixed lab key (ed25519 of the private bytes 0..31), as a lab has after its first up."""

# case name -> (example lab, recorded host facts, the lab's public key: None before the first up)
LAB_CASES = {
    "linux-nested-tcg": ("linux-nested", "this-machine-paravirtual-kvm", TEST_PUBLIC_KEY),
    "linux-nested-tcg-before-up": ("linux-nested", "this-machine-paravirtual-kvm", None),
    "linux-nested-kvm-intel": ("linux-nested", "intel-nested-y", TEST_PUBLIC_KEY),
    "linux-nested-kvm-amd": ("linux-nested", "amd-nested-1", TEST_PUBLIC_KEY),
    "routed-pair-tcg": ("routed-pair", "this-machine-paravirtual-kvm", TEST_PUBLIC_KEY),
    "windows-hyperv-kvm-intel": ("windows-hyperv", "intel-nested-y", TEST_PUBLIC_KEY),
    "windows-hyperv-kvm-amd": ("windows-hyperv", "amd-nested-1", TEST_PUBLIC_KEY),
    "windows-server-2019-kvm-intel": ("windows-server-2019", "intel-nested-y", TEST_PUBLIC_KEY),
    "windows-server-2019-kvm-amd": ("windows-server-2019", "amd-nested-1", TEST_PUBLIC_KEY),
    "windows-server-2022-kvm-intel": ("windows-server-2022", "intel-nested-y", TEST_PUBLIC_KEY),
    "windows-server-2022-kvm-amd": ("windows-server-2022", "amd-nested-1", TEST_PUBLIC_KEY),
}
# case name -> (recorded host facts, Windows Server), for the domain that installs a base image
INSTALL_CASES = {
    "windows-install-kvm-intel": ("intel-nested-y", OS.windows_server_2016),
    "windows-install-kvm-amd": ("amd-nested-1", OS.windows_server_2016),
    "windows-install-2022-kvm-amd": ("amd-nested-1", OS.windows_server_2022),
}
CASES = sorted([*LAB_CASES, *INSTALL_CASES])


def render_case(case: str) -> dict[PurePosixPath, str]:
    if case in INSTALL_CASES:
        facts_name, os = INSTALL_CASES[case]
        images = Path("/var/cache/nestlab/images") / os.profile.default_image
        plan = build_plan(check_host(facts(facts_name)), "0123456789abcdef", os, "standard",
                          images / "build", Path(f"/srv/iso/{os.profile.product.replace(' ', '')}.iso"),
                          logs=images / "log")
        return {PurePosixPath("l0/domains", f"{plan.name}.xml"): render_install_domain_xml(plan)}
    lab_name, facts_name, public_key = LAB_CASES[case]
    lab = example(lab_name)
    plan = make_plan(lab, check_host(facts(facts_name), lab).decide(lab.name),
                     Path("/var/lib/nestlab/labs") / lab.name, public_key)
    return render_artifacts(plan)


def libvirt_xml(artifacts: Mapping[PurePosixPath, str]) -> dict[PurePosixPath, str]:
    """The artifacts that are libvirt domain or network XML (not answer files or scripts)."""
    return {path: text for path, text in artifacts.items()
            if path.parent.name in ("domains", "networks")}


def golden_differences(golden: Path, artifacts: Mapping[PurePosixPath, str]) -> list[str]:
    """How a case's golden folder differs from a fresh render, one entry per file: a
    unified diff for a changed file (as virt-manager's tests show), a line for a file
    only one side has."""
    on_disk = {p.relative_to(golden).as_posix(): p.read_text()
               for p in sorted(golden.rglob("*")) if p.is_file()}
    rendered = {path.as_posix(): text for path, text in artifacts.items()}
    found = []
    for name in sorted(on_disk.keys() | rendered.keys()):
        if name not in rendered:
            found.append(f"{name}: a golden file that is no longer rendered")
        elif name not in on_disk:
            found.append(f"{name}: rendered, but there is no golden file for it")
        elif on_disk[name] != rendered[name]:
            found.append("\n".join(difflib.unified_diff(
                on_disk[name].splitlines(), rendered[name].splitlines(),
                fromfile=f"golden/{name}", tofile=f"rendered/{name}", lineterm="")))
    return found


def rewrite_golden(golden: Path, artifacts: Mapping[PurePosixPath, str]) -> None:
    """Replace a case's golden folder with a fresh render; files no longer rendered go."""
    if golden.exists():
        shutil.rmtree(golden)
    write_artifacts(artifacts, golden)
