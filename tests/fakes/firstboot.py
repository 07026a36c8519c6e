"""FAKE first boot of a Windows L1, from its cloned base image until nestlab's WinRM
session opens. No Windows can run on the project's machines.

``FakeFirstBoot`` plugs into ``WinRMTransport`` as its runspace factory: each
``open`` (one connection attempt) is one step of the boot, answered as the
guest would answer it then (connection refused, 401, or a session).

It runs nestlab's real scripts (tests/fakes/winscript.py), not a copy of their
logic: ``build.ps1`` on a fresh installation makes the base image, and the
L1's first logon runs the command line of its rendered answer file
(``autounattend.xml``) with the script it names from the same medium; a
parameter the script does not declare, or a mandatory one missing, fails.

Which real behaviour it copies, and from where:

- WinRM answers once services run, which is during OOBE, before oobeSystem
  has set the Administrator password: a 401 until then (issue 10). pypsrp
  raises ``WinRMTransportError`` with code 401.
- Autologon (Microsoft KB 221477): the answer file's ``LogonCount`` counts
  down at each autologon, and at zero no boot logs on by itself; the password
  stays in Winlogon (``DefaultPassword``) until something removes it, and the
  session stays logged on until it logs off or the machine restarts.
- Scheduled tasks with an ``-AtStartup`` trigger run at the next boot, as
  SYSTEM, with no session.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import requests
from pypsrp.exceptions import WinRMTransportError

from tests.fakes.winscript import Machine, ScriptRun, ScriptThrew
from tests.powershell import script_parameters

ANSWER_NS = {"u": "urn:schemas-microsoft-com:unattend"}


def parse_arguments(words: list[str]) -> dict[str, Any]:
    """``-Name value`` and ``-Switch`` words as PowerShell binds them to a param() block."""
    bound: dict[str, Any] = {}
    i = 0
    while i < len(words):
        assert words[i].startswith("-"), f"a positional argument: {words[i]!r}"
        has_value = i + 1 < len(words) and not words[i + 1].startswith("-")
        bound[words[i][1:]] = words[i + 1].strip("'") if has_value else True
        i += 2 if has_value else 1
    return bound


def check_binding(script: str, bound: dict[str, Any]) -> None:
    """PowerShell refuses a parameter the script does not declare, or a missing mandatory one."""
    declared = script_parameters(script)
    unknown = set(bound) - set(declared)
    assert not unknown, f"the script declares no parameter(s) {unknown}"
    missing = {p for p, required in declared.items() if required} - set(bound)
    assert not missing, f"the script needs {missing} (Windows would prompt, and wait forever)"


def first_logon_command(answer_xml: str) -> tuple[str, list[str]]:
    """The script a first-boot answer file's only first-logon command runs, and its arguments."""
    commands = ET.fromstring(answer_xml).findall(".//u:FirstLogonCommands/u:SynchronousCommand/"
                                                 "u:CommandLine", ANSWER_NS)
    assert len(commands) == 1, "one first-logon command"
    line = re.search(r"Join-Path \$_\.Root '([^']+)'; if \(Test-Path \$p\) \{ & \$p([^}]*)\}",
                     commands[0].text or "")
    assert line, f"not the drive-scanning command line: {commands[0].text!r}"
    return line.group(1), line.group(2).split()


def build_base_image(build_script: str) -> Machine:
    """A fresh Windows Server 2016 installation that ran build.ps1, then sysprep."""
    machine = Machine()
    ScriptRun(build_script, machine, {}, []).run()
    machine.name = "WIN-GENERALIZED"  # sysprep /generalize: a new identity at first boot
    return machine


@dataclass
class FakeFirstBoot:
    """An L1's first boot, one step per connection attempt (``open``)."""

    medium: dict[str, str]
    """The L1's answer medium: autounattend.xml and the script its first logon runs."""
    base: Machine
    password: str
    """The password nestlab sends (and the answer file sets)."""
    specialize_names_it: bool = True
    rename_takes: bool = True
    """False: a Rename-Computer that does not take (to see the script restart only once)."""
    boot_steps: int = 2
    """Attempts that find nothing listening (firmware, specialize, its reboot)."""
    oobe_steps: int = 2
    """Attempts during OOBE, before oobeSystem sets the password."""
    machine: Machine = field(init=False)
    step: int = 0
    done: list[str] = field(default_factory=list)
    """What the scripts did, in order, across boots (``ScriptRun.done``)."""
    boots: int = 1
    opened: int = 0

    def __post_init__(self) -> None:
        self.machine = copy.deepcopy(self.base)
        self.machine.winrm_running = self.machine.winrm_service == "auto"

    @property
    def lab_name(self) -> str:
        name = ET.fromstring(self.medium["autounattend.xml"]).findtext(
            ".//u:ComputerName", namespaces=ANSWER_NS)
        assert name, "the answer file names no computer"
        return name

    # -- the runspace factory protocol (WinRMTransport) -------------------------------
    def open(self) -> Any:
        self.step += 1
        if self.step == self.boot_steps + 1:
            self._specialize()
        if self.step == self.boot_steps + self.oobe_steps + 1:
            self._oobe_and_first_logon()
        m = self.machine
        if self.step <= self.boot_steps or not m.winrm_reachable:
            raise requests.exceptions.ConnectionError("connection refused (fake first boot)")
        if m.password != self.password:
            raise WinRMTransportError("http", 401, "Unauthorized (fake first boot)")
        self.opened += 1

        class Pool:
            def close(self) -> None:
                pass

        return Pool()

    def invoke(self, pool: Any, build: Any) -> tuple[list[Any], list[str], bool]:
        return ["ok"], [], False

    # -- the boot ----------------------------------------------------------------------
    def _specialize(self) -> None:
        if self.specialize_names_it:
            self.machine.name = self.lab_name

    def _oobe_and_first_logon(self) -> None:
        m = self.machine
        m.password = self.password
        m.autologon, m.autologon_count, m.winlogon_password = True, 1, True
        self._autologon()
        self.done.append("first logon" if m.logged_on else "no first logon")
        script_name, words = first_logon_command(self.medium["autounattend.xml"])
        script = self.medium[script_name]
        arguments = parse_arguments(words)
        check_binding(script, arguments)
        self._run(script, arguments)

    def _autologon(self) -> None:
        m = self.machine
        if m.autologon and m.autologon_count > 0:
            m.autologon_count -= 1
            m.logged_on = True

    def _run(self, script: str, arguments: dict[str, Any]) -> None:
        try:
            ScriptRun(script, self.machine, arguments, self.done).run()
        except ScriptThrew as exc:
            self.done.append(f"the script failed: {exc}")
        if self.machine.restart_pending:
            self._restart(script)

    def _restart(self, script: str) -> None:
        m = self.machine
        m.restart_pending, m.logged_on = False, False
        self.boots += 1
        self.done.append(f"boot {self.boots}")
        if m.pending_name and self.rename_takes:
            m.name = m.pending_name
        m.pending_name = None
        m.winrm_running = m.winrm_service == "auto"
        self._autologon()
        if m.startup_task is not None:
            arguments = parse_arguments(m.startup_task)
            check_binding(script, arguments)
            self._run(script, arguments)  # as SYSTEM: no session
