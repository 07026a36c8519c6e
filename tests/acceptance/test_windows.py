"""Acceptance on a real KVM host with a Windows Server 2016, 2019 or 2022 ISO:
`make acceptance-windows ISO=... [OS=...]`.

Checks the example lab of that version (`examples/windows-hyperv.yaml` for 2016,
`examples/windows-server-2019.yaml`, `examples/windows-server-2022.yaml`; the lab named
by NESTLAB_ACCEPTANCE_LAB) after `nestlab up`, through pytest-testinfra's WinRM backend
(NTLM; pywinrm encrypts the messages over HTTP): the Windows version the lab asked for,
the Hyper-V role, the hypervisor, the NAT switch, and both L2 primes running with a
heartbeat. Not part of `make test`: no Windows runs on the project's own machines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import testinfra

from nestlab.build.answerfile import l1_password
from nestlab.commands.context import LabContext
from nestlab.state.paths import lab_dir

LAB = os.environ.get("NESTLAB_ACCEPTANCE_LAB", "windows-hyperv")


@pytest.fixture(scope="module")
def ctx() -> LabContext:
    directory = lab_dir(LAB)
    if not (directory / "lab.json").exists():
        pytest.fail(f"lab {LAB} is not up: run `make acceptance-windows ISO=...`, or "
                    f"`nestlab up -f` its example (NESTLAB_ACCEPTANCE_LAB names another lab)")
    return LabContext.load(directory)


@pytest.fixture(scope="module")
def hv1(ctx: LabContext) -> Any:
    directory = lab_dir(LAB)
    host = ctx.plan.host("hv1")
    password = quote(l1_password(Path(directory), "hv1"), safe="")
    return testinfra.get_host(
        f"winrm://Administrator:{password}@{host.nics[0].ip}:5985?no_ssl=true")


def powershell(host: Any, script: str) -> Any:
    result = host.run(f"powershell -NoProfile -Command \"{script} | ConvertTo-Json\"")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def test_the_l1_runs_the_windows_server_its_lab_asks_for(ctx: LabContext, hv1: Any) -> None:
    # "Microsoft Windows Server 2022 Standard Evaluation"
    caption = powershell(hv1, "(Get-CimInstance Win32_OperatingSystem).Caption")
    assert ctx.plan.host("hv1").os.profile.product in caption


def test_hyperv_role_and_hypervisor(hv1: Any) -> None:
    assert powershell(hv1, "(Get-WindowsFeature Hyper-V).InstallState.ToString()") == "Installed"
    assert powershell(hv1, "(Get-CimInstance Win32_ComputerSystem).HypervisorPresent") is True


def test_nat_switch(hv1: Any) -> None:
    assert powershell(hv1, "(Get-VMSwitch -Name nestlab).SwitchType.ToString()") == "Internal"
    assert powershell(hv1, "(Get-NetNat -Name nestlab).InternalIPInterfaceAddressPrefix") == (
        "192.168.100.0/24")


@pytest.mark.parametrize("guest", ["prime1", "prime2"])
def test_guest_primes_run(hv1: Any, guest: str) -> None:
    assert powershell(hv1, f"(Get-VM -Name {guest}).State.ToString()") == "Running"
    heartbeat = powershell(hv1, f"(Get-VMIntegrationService -VMName {guest} -Name Heartbeat)"
                                ".PrimaryStatusDescription")
    assert heartbeat == "OK"
