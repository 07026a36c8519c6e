"""Every PowerShell script nestlab sends parses with a real PowerShell grammar."""

from __future__ import annotations

import re

import pytest

from nestlab.build.answerfile import render_install_answer, render_l1_answer
from nestlab.lab.systems import WINDOWS_IMAGES
from nestlab.render import powershell_script, powershell_script_names
from tests.fakes.hyperv import FakeHyperVL1
from tests.golden_cases import CASES, render_case
from tests.powershell import script_parameters, syntax_errors

SCRIPTS = powershell_script_names()
RENDERED = sorted((case, str(path), text) for case in CASES
                  for path, text in render_case(case).items() if path.suffix == ".ps1")
RENDERED_ANSWERS = [text for case in CASES for path, text in render_case(case).items()
                    if path.name == "autounattend.xml"]


def test_the_scripts_are_all_found() -> None:
    assert {"winrm", "build", "preflight", "install-hyperv", "hyperv-state", "restart",
            "guest-network", "guest-folder", "guest-vm", "guest-proof", "guest-states", "file-hash",
            "remove-guests", "guest-restart", "guest-remove"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_parses_without_errors(name: str) -> None:
    assert syntax_errors(powershell_script(name)) == []


@pytest.mark.parametrize(("case", "path", "script"), RENDERED,
                         ids=[f"{c}:{p}" for c, p, _ in RENDERED])
def test_every_script_render_writes_parses(case: str, path: str, script: str) -> None:
    assert syntax_errors(script) == []


def test_render_writes_scripts() -> None:
    assert {p.rpartition("/")[2] for _, p, _ in RENDERED} >= {"winrm.ps1", "guest-vm.ps1"}
    assert RENDERED_ANSWERS


def test_the_fake_l1_refuses_a_script_that_does_not_parse() -> None:
    # Every script provisioning runs goes through the fake in its tests, parsed there.
    with pytest.raises(AssertionError, match=r"restart\.ps1 does not parse"):
        FakeHyperVL1().run_script("restart", "Restart-Computer -Force {")


def test_the_check_catches_broken_powershell() -> None:
    assert syntax_errors("if ($x { Write-Host 'unclosed' }")
    assert syntax_errors("New-VM -Name 'a' -Path \"C:\\x")


INSTALL_ANSWERS = [render_install_answer(os, "standard", "Pw-1x") for os in WINDOWS_IMAGES.values()]


@pytest.mark.parametrize("answer", [*INSTALL_ANSWERS, render_l1_answer("hv1", "Pw-1x"),
                                    *RENDERED_ANSWERS])
def test_first_logon_command_lines_parse(answer: str) -> None:
    commands = re.findall(r"<CommandLine>powershell [^\"]*\"(.*)\"</CommandLine>", answer)
    assert commands
    for command in commands:
        assert syntax_errors(command.replace("&amp;", "&")) == []


def test_values_are_parameters_not_text() -> None:
    assert script_parameters(powershell_script("guest-vm"))["MacAddress"] is True
    assert "{{" not in "".join(powershell_script(n) for n in SCRIPTS)


def test_winrm_allows_neither_basic_nor_unencrypted() -> None:
    script = powershell_script("winrm")
    assert "'WSMan:\\localhost\\Service\\AllowUnencrypted' -Value $false" in script
    assert "'WSMan:\\localhost\\Service\\Auth\\Basic' -Value $false" in script
    assert "Set-NetConnectionProfile -NetworkCategory Private" in script
    assert "Panther\\unattend.xml" in script  # the cached answer file is removed


def test_build_and_first_boot_name_the_same_winrm_block_rule() -> None:
    # build.ps1 blocks 5985 with this rule; winrm.ps1 opens WinRM by removing it.
    assert "New-NetFirewallRule -Name 'nestlab-winrm-block'" in powershell_script("build")
    assert "$BlockRule = 'nestlab-winrm-block'" in powershell_script("winrm")
    assert "Remove-NetFirewallRule -Name $BlockRule" in powershell_script("winrm")
