"""A Windows L1's first boot, from the base image to nestlab's first WinRM session: the
real build.ps1, answer file and winrm.ps1 run against a FAKE first boot
(tests/fakes/firstboot.py), reached through the real WinRMTransport."""

from __future__ import annotations

import pytest
import requests

from nestlab.build.answerfile import answer_password
from nestlab.render import l1_answer_medium, powershell_script
from nestlab.transport.winrm import FIRST_BOOT_401, WinRMTransport
from tests.fakes.firstboot import FakeFirstBoot, build_base_image
from tests.fakes.winscript import Machine

PASSWORD = "Pw-of-hv1-9"
SYSPREP_ONLY = ("$sysprep = Join-Path $env:SystemRoot 'System32\\Sysprep\\sysprep.exe'\n"
                "& $sysprep /generalize /oobe /shutdown /quiet\n")
"""A build script that leaves WinRM as Windows Server 2016 has it: on."""


def first_boot(base: Machine | None = None, specialize_names_it: bool = True) -> FakeFirstBoot:
    return FakeFirstBoot(l1_answer_medium("hv1", answer_password(PASSWORD)),
                         base or build_base_image(powershell_script("build")), PASSWORD,
                         specialize_names_it=specialize_names_it)


def reach(boot: FakeFirstBoot) -> list[str]:
    """What ``up``'s WinRM wait hears until the session opens."""
    heard: list[str] = []
    t = WinRMTransport("hv1", "10.78.0.10", "Administrator", PASSWORD, factory=boot,
                       sleep=lambda _s: None)
    try:
        t.wait_until_reachable(1800, heard.append)
    finally:
        t.close()
    assert boot.opened == 1
    return heard


def after_opening(boot: FakeFirstBoot) -> list[str]:
    """What the first-boot scripts did from the moment WinRM opened."""
    opened = next(i for i, done in enumerate(boot.done) if "[WinRM open" in done)
    return boot.done[opened:]


def test_windows_answers_401_before_oobe_sets_the_password() -> None:
    # The fake's model of an unblocked base image, and the wait getting through it.
    boot = first_boot(build_base_image(SYSPREP_ONLY))
    heard = reach(boot)
    assert heard.count(FIRST_BOOT_401) == boot.oobe_steps
    assert heard[0].startswith("ConnectionError")  # still booting


def test_the_base_image_keeps_winrm_shut() -> None:
    base = build_base_image(powershell_script("build"))
    assert not base.winrm_reachable
    assert base.winrm_service == "disabled" and "Block" in base.firewall.values()
    assert build_base_image(SYSPREP_ONLY).winrm_reachable  # Windows' default


@pytest.mark.parametrize("specialize_names_it", [True, False])
def test_first_contact_finds_the_lab_name_and_password(specialize_names_it: bool) -> None:
    boot = first_boot(specialize_names_it=specialize_names_it)
    heard = reach(boot)
    assert FIRST_BOOT_401 not in heard  # nothing answered before the password was set
    assert boot.machine.name == "hv1"
    assert all(done.endswith("name hv1]") for done in boot.done if "[WinRM open" in done)


def test_the_name_is_fixed_by_one_restart_when_specialize_did_not_set_it() -> None:
    boot = first_boot(specialize_names_it=False)
    reach(boot)
    assert boot.boots == 2
    assert boot.done.index("boot 2") < boot.done.index(after_opening(boot)[0])
    assert boot.machine.startup_task is None  # the task that opened WinRM is gone


def test_a_rename_that_does_not_take_restarts_once_and_keeps_winrm_shut() -> None:
    boot = first_boot(specialize_names_it=False)
    boot.rename_takes = False
    for _ in range(boot.boot_steps + boot.oobe_steps + 5):
        with pytest.raises(requests.exceptions.ConnectionError):
            boot.open()
    assert boot.boots == 2  # no restart loop
    assert "the script failed: the computer is still WIN-GENERALIZED after its rename to hv1" in (
        boot.done)
    assert not boot.machine.winrm_reachable


def test_no_restart_when_specialize_named_it() -> None:
    boot = first_boot()
    reach(boot)
    assert boot.boots == 1
    assert not any(done.startswith("rename-computer") for done in boot.done)


@pytest.mark.parametrize("specialize_names_it", [True, False])
def test_winrm_opens_last(specialize_names_it: bool) -> None:
    boot = first_boot(specialize_names_it=specialize_names_it)
    reach(boot)
    assert after_opening(boot)[0].startswith("remove-netfirewallrule")
    assert all(done.startswith("logoff") for done in after_opening(boot)[1:])


@pytest.mark.parametrize("specialize_names_it", [True, False])
def test_no_session_stays_logged_on_and_autologon_is_off(specialize_names_it: bool) -> None:
    boot = first_boot(specialize_names_it=specialize_names_it)
    reach(boot)
    assert "first logon" in boot.done
    m = boot.machine
    assert (m.logged_on, m.autologon, m.winlogon_password) == (False, False, False)


def test_the_fake_catches_winrm_opened_before_the_rename_restart() -> None:
    # Restart-Computer returns at once: without the exit after it, WinRM would open
    # under the old name. The checks above must see that.
    medium = l1_answer_medium("hv1", answer_password(PASSWORD))
    assert "    Restart-WithLabName\n    exit 0\n" in medium["winrm.ps1"]
    medium["winrm.ps1"] = medium["winrm.ps1"].replace("    exit 0\n", "")
    boot = FakeFirstBoot(medium, build_base_image(powershell_script("build")), PASSWORD,
                         specialize_names_it=False)
    reach(boot)
    assert after_opening(boot)[0].endswith("name WIN-GENERALIZED]")


def test_the_fake_refuses_a_first_logon_without_the_computer_name() -> None:
    medium = l1_answer_medium("hv1", answer_password(PASSWORD))
    medium["autounattend.xml"] = medium["autounattend.xml"].replace(" -ComputerName hv1", "")
    boot = FakeFirstBoot(medium, build_base_image(powershell_script("build")), PASSWORD)
    with pytest.raises(AssertionError, match=r"needs \{'ComputerName'\}"):
        reach(boot)


def test_the_fake_refuses_an_if_it_does_not_know() -> None:
    script = "param([string]$ComputerName)\nif ($env:USERNAME -eq 'x') { Restart-Computer }\n"
    medium = {**l1_answer_medium("hv1", answer_password(PASSWORD)), "winrm.ps1": script}
    with pytest.raises(AssertionError, match=r"does not know what `if \(\$env:USERNAME"):
        reach(FakeFirstBoot(medium, build_base_image(powershell_script("build")), PASSWORD))
