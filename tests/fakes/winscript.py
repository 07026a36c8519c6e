"""FAKE run of nestlab's Windows first-boot scripts against a model of the machine.
No Windows (and no PowerShell) can run on the project's machines.

``ScriptRun`` walks a script's statements in order, parsed with tree-sitter's
PowerShell grammar: functions are called where the script calls them, loops
run their body once, ``throw``/``exit``/``return`` do what they do. An ``if``
whose condition it does not know fails the test, so a change to a script
must teach the fake what it means. The cmdlets with an effect change a small
model of the machine (``Machine``); all others have none.

Which real behaviour it copies, and from where:

- WinRM is on by default in Windows Server 2016 (service auto-start, an HTTP
  listener on 5985, the built-in firewall rule allowing it).
- A firewall block rule wins over every allow rule (Windows Firewall rule
  precedence). A disabled service does not start at boot. Whether
  ``winrm quickconfig`` starts a *disabled* service is not known here: the
  fake refuses it, so a script must enable the service first.
- ``Restart-Computer -Force`` returns before Windows goes down: the script goes
  on until it exits, and everything it does meanwhile counts.
- ``Rename-Computer`` takes effect at the next boot.

Not modelled: the LSA secret DefaultPassword, the cached answer file in
Panther, the network profile (taken as identified), Add-Type.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import tree_sitter

from tests.powershell import parse, syntax_errors


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
        elif kind == "try_statement":
            self._try(node, context)
        elif kind == "flow_control_statement":
            self._flow(node)
        elif kind == "pipeline":
            self._pipeline(node, context)
        elif kind in ("param_block", "comment", "empty_statement", "{", "}"):
            pass
        else:
            raise AssertionError(f"the fake does not run a {kind}: {_text(node)[:60]!r}")

    def _try(self, node: tree_sitter.Node, context: str) -> None:
        """The try block; when it throws, the first catch block (there is no finally here)."""
        body = next(c for c in node.children if c.type == "statement_block")
        catches = next((c for c in node.children if c.type == "catch_clauses"), None)
        assert not any(c.type == "finally_clause" for c in node.children), "no finally here"
        try:
            self._statements(body, context)
        except ScriptThrew:
            if catches is None:
                raise
            catch = next(c for c in catches.children if c.type == "catch_clause")
            self._statements(next(c for c in catch.children if c.type == "statement_block"),
                             context)

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
            # build.ps1 after sysprep: the model's sysprep always succeeds
            # (tests/fakes/winsetup.py models the ones that fail).
            "$state -ne 'IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE'": lambda: False,
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
