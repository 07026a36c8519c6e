"""The checks `nestlab verify` runs against every lab: each L1 runs its hypervisor with
nesting on, each L2 runs in its L1 and answers. Plain pytest + testinfra through
nestlab's pytest plugin: ``l1``/``l2`` make a test run once per guest, ``l1_host`` is
a testinfra host over the lab's pinned session, ``nestlab_lab`` the lab itself.
Copy what you need into your own tests.
"""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.plan import domain_name


def test_l1_runs_its_hypervisor(l1: Any, l1_host: Any) -> None:
    """Linux: /dev/kvm usable and libvirt using it. Windows: the Hyper-V role installed
    and its management service (vmms) running."""
    if l1.family == "windows":
        role = l1_host.run("(Get-WindowsFeature -Name Hyper-V).InstallState").stdout.strip()
        assert role == "Installed", f"the Hyper-V role is {role or 'unknown'}"
        vmms = l1_host.run("(Get-Service -Name vmms).Status").stdout.strip()
        assert vmms == "Running", f"the vmms service is {vmms or 'unknown'}"
        return
    assert l1_host.run("test -c /dev/kvm -a -r /dev/kvm -a -w /dev/kvm").rc == 0, \
        "/dev/kvm is missing or not usable"
    assert l1_host.service("libvirtd").is_running
    # libvirt opens /dev/kvm and asks KVM what it offers: only a usable one answers.
    caps = l1_host.run("virsh -c qemu:///system domcapabilities --virttype kvm")
    assert caps.rc == 0, f"libvirt in {l1.name} cannot use KVM: {caps.stderr.strip()}"


def test_l1_has_nesting_on(l1: Any, l1_host: Any) -> None:
    """The L1's KVM lets its own guests use hardware virtualization (nested=1 or Y)."""
    if l1.family == "windows":
        pytest.skip("Hyper-V has no nesting switch to read: its L2s running is the proof")
    modules = [m for m in ("kvm_intel", "kvm_amd") if l1_host.file(f"/sys/module/{m}").exists]
    assert modules, "neither kvm_intel nor kvm_amd is loaded"
    nested = l1_host.file(f"/sys/module/{modules[0]}/parameters/nested").content_string.strip()
    assert nested in ("1", "Y"), f"{modules[0]} nested={nested}"


def test_l2_runs_in_its_l1(l2: Any, nestlab_lab: Any) -> None:
    """As the L1's hypervisor says it."""
    if l2.family == "windows":
        command = f"(Get-VM -Name '{l2.name}').State"
    else:
        domain = domain_name(nestlab_lab.name, l2.name)
        command = f"virsh -c qemu:///system domstate {domain}"
    state = nestlab_lab.shell(l2.l1, command).stdout.strip()
    assert state.lower() == "running", f"{l2.name} is {state or 'absent'} in {l2.l1}"


def test_l2_answers(l2: Any, nestlab_lab: Any) -> None:
    """Linux L1: a command over SSH through the L1. Windows L1: Hyper-V's heartbeat."""
    if l2.family == "windows":
        beat = nestlab_lab.shell(
            l2.l1, f"(Get-VMIntegrationService -VMName '{l2.name}' -Name Heartbeat)"
                   ".PrimaryStatusDescription").stdout.strip()
        assert beat == "OK", f"{l2.name}'s heartbeat in {l2.l1} is {beat or 'unknown'}"
        return
    result = nestlab_lab.exec(l2.name, "hostname")
    assert result.exit_status == 0, result.stderr
    assert result.stdout.strip() == l2.name
