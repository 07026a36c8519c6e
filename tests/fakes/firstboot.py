"""FAKE first boot of a Windows L1, from its cloned base image until nestlab's WinRM
session opens. No Windows can run on the project's machines.

``FakeFirstBoot`` plugs into ``WinRMTransport`` as its runspace factory: each
``open`` (one connection attempt) is one step of the boot, answered as the
guest would answer it then (connection refused, 401, or a session).

It runs nestlab's real scripts, not a copy of their logic: ``build.ps1`` on a
fresh installation makes the base image, and the L1's first logon runs the
command line of its rendered answer file (``autounattend.xml``) with the
script it names from the same medium. ``ScriptRun`` walks each script's
statements in order (tree-sitter's PowerShell grammar): functions are called
where the script calls them; an ``if`` whose condition it does not know, or a
command line that passes a parameter the script does not declare, fails the
test, so a change to a script must teach the fake what it means. The cmdlets
with an effect change a small model of the machine (``Machine``); all others
have none.

Which real behaviour each part copies, and from where:

- WinRM is on by default in Windows Server 2016 (service auto-start, an HTTP
  listener on 5985); it answers once services run, which is during OOBE,
  before oobeSystem has set the Administrator password: a 401 until then
  (issue 10). pypsrp raises ``WinRMTransportError`` with code 401.
- A firewall block rule wins over every allow rule (Windows Firewall rule
  precedence). A disabled service does not start at boot. Whether
  ``winrm quickconfig`` starts a *disabled* service is not known here: the
  fake refuses it, so a script must enable the service first.
- ``Restart-Computer -Force`` returns before Windows goes down: the script goes
  on until it exits, and everything it does meanwhile counts.
- ``Rename-Computer`` takes effect at the next boot.
- Autologon (Microsoft KB 221477): the answer file's ``LogonCount`` counts
  down at each autologon, and at zero no boot logs on by itself; the password
  stays in Winlogon (``DefaultPassword``) until something removes it, and the
  session stays logged on until it logs off or the machine restarts.
- Scheduled tasks with an ``-AtStartup`` trigger run at the next boot, as
  SYSTEM, with no session.

Not modelled: the LSA secret DefaultPassword, the cached answer file in
Panther, the network profile (taken as identified), Add-Type.
"""

from __future__ import annotations

import contextlib
import copy
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import tree_sitter
from pypsrp.exceptions import WinRMTransportError

from tests.powershell import parse, script_parameters, syntax_errors

ANSWER_NS = {"u": "urn:schemas-microsoft-com:unattend"}


@dataclass
class Machine:
    """What the fake knows of a Windows machine's state."""

    name: str = "WIN-7Q2K4RM1LBA"
    pending_name: str | None = None
    winrm_service: str = "auto"
    """The WinRM service's start type: auto (the default on Server 2016) or disabled."""
    winrm_running: bool = True
    winrm_listener: bool = True
    firewall: dict[str, str] = field(default_factory=lambda: {"WINRM-HTTP-In-TCP": "Allow"})
    """Inbound rules for 5985 by name: Allow or Block (the built-in one allows)."""
    password: str | None = None
    """The Administrator password WinRM accepts; None until oobeSystem sets it."""
    autologon: bool = False
    autologon_count: int = 0
    winlogon_password: bool = False
    """Whether Winlogon still holds the autologon password (DefaultPassword)."""
    logged_on: bool = False
    startup_task: list[str] | None = None
    """The arguments a startup task runs the first-boot script with, once registered."""
    restart_pending: bool = False

    @property
    def winrm_reachable(self) -> bool:
        return (self.winrm_running and self.winrm_listener
                and "Allow" in self.firewall.values() and "Block" not in self.firewall.values())


class ScriptThrew(Exception):
    """The script stopped on an error (``throw``, or a cmdlet that fails)."""


class _Exit(Exception):
    pass


class _Return(Exception):
    pass


@dataclass
class ScriptRun:
    """One run of a PowerShell script against a ``Machine``: its statements in order."""

    source: str
    machine: Machine
    parameters: dict[str, Any]
    done: list[str]
    """Every command with an effect, as ``name: what it did``, across runs."""
    functions: dict[str, tree_sitter.Node] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)

    def run(self) -> None:
        assert not syntax_errors(self.source), "the script does not parse"
        with contextlib.suppress(_Exit):
            self._statements(parse(self.source).root_node, "")

    # -- statements ------------------------------------------------------------------
    def _statements(self, node: tree_sitter.Node, context: str) -> None:
        for child in node.children:
            self._statement(child, context)

    def _statement(self, node: tree_sitter.Node, context: str) -> None:
        kind = node.type
        if kind in ("statement_list", "script_block", "script_block_body", "statement_block"):
            self._statements(node, context)
        elif kind == "function_statement":
            name = _text(next(c for c in node.children if c.type == "function_name"))
            self.functions[name.lower()] = next(c for c in node.children
                                                if c.type == "script_block")
        elif kind == "if_statement":
            self._if(node, context)
        elif kind in ("foreach_statement", "for_statement", "while_statement"):
            # The body once; what the loop goes over is the context of its commands.
            header = _text(node).split("{", 1)[0]
            body = next(c for c in node.children if c.type == "statement_block")
            self._statements(body, context + header)
        elif kind == "flow_control_statement":
            self._flow(node)
        elif kind == "pipeline":
            self._pipeline(node, context)
        elif kind in ("param_block", "comment", "empty_statement", "{", "}"):
            pass
        else:
            raise AssertionError(f"the fake does not run a {kind}: {_text(node)[:60]!r}")

    def _flow(self, node: tree_sitter.Node) -> None:
        keyword = node.children[0].type
        if keyword == "throw":
            message = _text(node).removeprefix("throw").strip().strip('"')
            raise ScriptThrew(self._substituted(message))
        if keyword == "exit":
            raise _Exit
        if keyword == "return":
            raise _Return
        raise AssertionError(f"the fake does not know {_text(node)!r}")

    def _if(self, node: tree_sitter.Node, context: str) -> None:
        condition = next(c for c in node.children if c.type == "pipeline")
        body = next(c for c in node.children if c.type == "statement_block")
        otherwise = next((c for c in node.children if c.type == "else_clause"), None)
        assert not any(c.type == "elseif_clauses" for c in node.children), "no elseif here"
        if self._condition(" ".join(_text(condition).split())):
            self._statements(body, context)
        elif otherwise is not None:
            self._statements(otherwise, context)

    def _condition(self, text: str) -> bool:
        m = self.machine
        name = str(self.parameters.get("ComputerName", ""))
        if pattern := re.fullmatch(r"\$ComputerName -notmatch '(.*)'", text):
            return re.search(pattern.group(1), name, re.IGNORECASE) is None
        if rule := re.fullmatch(r"-not \(Get-NetFirewallRule -Name '([^']*)'.*\)", text):
            return rule.group(1) not in m.firewall
        known: dict[str, Callable[[], bool]] = {
            "$env:COMPUTERNAME -ne $ComputerName": lambda: m.name.lower() != name.lower(),
            "$AfterRename": lambda: bool(self.parameters.get("AfterRename")),
            "-not $AfterRename": lambda: not self.parameters.get("AfterRename"),
            "$LASTEXITCODE -ne 0": lambda: False,
            "-not $rule": lambda: self.variables.get("rule") != "found",
            "Get-NetConnectionProfile -ErrorAction SilentlyContinue": lambda: True,
        }
        assert text in known, f"the fake does not know what `if ({text})` means"
        return known[text]()

    def _pipeline(self, node: tree_sitter.Node, context: str) -> None:
        assignment = next((c for c in node.children if c.type == "assignment_expression"), None)
        if assignment is not None:
            target = _text(assignment.children[0]).lstrip("$")
            value = assignment.children[-1]
            literal = re.fullmatch(r"'([^']*)'", _text(value))
            self.variables[target] = literal.group(1) if literal else ""
            for command in _commands(value):
                if self._command(command, context) is not None:
                    self.variables[target] = "found"
            return
        for command in _commands(node):
            self._command(command, context)

    # -- commands --------------------------------------------------------------------
    def _command(self, node: tree_sitter.Node, context: str) -> str | None:
        """Run one command; returns what a Get- command found, else None."""
        name_node = next(c for c in node.children if c.type in ("command_name",
                                                                "command_name_expr"))
        name = _text(name_node).lower()
        text = self._substituted(_text(node))
        if name in self.functions:
            with contextlib.suppress(_Return):
                self._statements(self.functions[name], context)
            return None
        return self._cmdlet(name, text, context)

    def _cmdlet(self, name: str, text: str, context: str) -> str | None:
        m = self.machine
        effect = ""
        if name == "set-itemproperty" and "AutoAdminLogon" in text:
            m.autologon = not re.search(r"-Value '?0'?", text)
            effect = f"autologon {'on' if m.autologon else 'off'}"
        elif name == "remove-itemproperty" and "DefaultPassword" in text + context:
            m.winlogon_password = False
            effect = "Winlogon DefaultPassword removed"
        elif name == "rename-computer":
            m.pending_name = _argument(text, "NewName")
            effect = f"rename to {m.pending_name} at the next boot"
        elif name == "register-scheduledtask" and "-AtStartup" in self.source:
            m.startup_task = _task_arguments(self.source, self.parameters)
            effect = "startup task registered"
        elif name == "unregister-scheduledtask":
            m.startup_task = None
            effect = "startup task removed"
        elif name == "restart-computer":
            m.restart_pending = True
            effect = "restart (returns at once)"
        elif name in ("set-service", "stop-service") and "WinRM" in text:
            effect = self._winrm_service(name, text)
        elif name == "winrm" and "quickconfig" in text:
            if m.winrm_service == "disabled":
                raise ScriptThrew("winrm quickconfig: the WinRM service is disabled")
            m.winrm_running = m.winrm_listener = True
            effect = "WinRM service started, HTTP listener"
        elif name == "new-netfirewallrule" and "5985" in text:
            rule = _argument(text, "Name")
            assert rule not in m.firewall, f"New-NetFirewallRule: {rule} exists already"
            m.firewall[rule] = _argument(text, "Action")
            effect = f"firewall rule {rule}: {m.firewall[rule]} 5985"
        elif name == "get-netfirewallrule":
            return "found" if _argument(text, "Name") in m.firewall else None
        elif name == "remove-netfirewallrule":
            rule = _argument(text, "Name")
            if m.firewall.pop(rule, None) is None and "SilentlyContinue" not in text:
                raise ScriptThrew(f"Remove-NetFirewallRule: no rule {rule}")
            effect = f"firewall rule {rule} removed"
        elif name in ("logoff", "logoff.exe"):
            m.logged_on = False
            effect = "logged off"
        if effect:
            opened = m.winrm_reachable and m.password is not None
            self.done.append(f"{name}: {effect}" + (f" [WinRM open, name {m.name}]" if opened
                                                     else ""))
        return None

    def _winrm_service(self, name: str, text: str) -> str:
        m = self.machine
        if name == "stop-service":
            m.winrm_running = False
            return "WinRM service stopped"
        m.winrm_service = "disabled" if "Disabled" in text else "auto"
        return f"WinRM service start type {m.winrm_service}"

    def _substituted(self, text: str) -> str:
        values = {**self.variables, **{k: str(v) for k, v in self.parameters.items()}}
        text = re.sub(r"\$\(\$env:COMPUTERNAME\)|\$env:COMPUTERNAME", self.machine.name, text)
        return re.sub(r"\$(\w+)", lambda v: values.get(v.group(1), v.group(0)), text)


def _text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode()


def _commands(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    """The commands of a pipeline in order, those nested in its arguments first (they run
    first), not those in script blocks (``Where-Object { ... }`` runs none of ours)."""
    found = []
    for child in node.children:
        if child.type == "script_block_expression":
            continue
        found.extend(_commands(child))
        if child.type == "command":
            found.append(child)
    return found


def _argument(text: str, parameter: str) -> str:
    match = re.search(rf"-{parameter}\s+'?([^'\s]+)'?", text)
    assert match, f"no -{parameter} in {text!r}"
    return match.group(1)


def _task_arguments(source: str, parameters: dict[str, Any]) -> list[str]:
    """The script arguments of the startup task's command line (the -Argument string)."""
    line = re.search(r'\$arguments = "(.*)"', source)
    assert line, "the startup task's arguments are not where the fake looks for them"
    words = line.group(1).split(" -File ", 1)[1].split()[1:]
    return [str(parameters.get(w[1:], w)) if w.startswith("$") else w for w in words]


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
