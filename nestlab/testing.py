"""A lab for a test run: brought up (or attached to), used, and taken down.

``LabSession`` is what the pytest plugin (``nestlab.pytest_plugin``) and
``nestlab verify`` use: ``up``, ``status`` and ``down`` are the code of the
nestlab commands, and commands in guests go through the lab's drivers, one
session per guest kept open for the whole run. Host keys are pinned exactly as
``nestlab ssh`` pins them: a guest that shows another key than the one pinned fails
with ``HostKeyChanged``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nestlab.commands.context import LabContext
from nestlab.drivers import Shell, driver_for
from nestlab.errors import InputError, NestlabError
from nestlab.host.facts import HostFacts
from nestlab.lab.labfile import load_lab
from nestlab.lab.model import Lab
from nestlab.progress import Reporter
from nestlab.state.paths import data_root
from nestlab.state.paths import lab_dir as lab_dir_of
from nestlab.transport.base import CommandResult
from nestlab.virt import DEFAULT_URI


class LabRunFailed(NestlabError):
    """``nestlab up`` or ``down`` failed for the test run; the message has its output."""


@dataclass(frozen=True)
class GuestName:
    """A guest of the lab as tests see it: ``kvm1``, or ``prime1@kvm1`` for an L2."""

    name: str
    l1: str
    is_l2: bool
    family: str

    @property
    def test_id(self) -> str:
        return f"{self.name}@{self.l1}" if self.is_l2 else self.name


def guests_of(lab: Lab) -> list[GuestName]:
    """Every L1 and L2 of the lab, in lab-file order (from the lab file alone, so that
    pytest can make one test per guest before anything runs)."""
    names = []
    for host in lab.hosts:
        names.append(GuestName(host.name, host.name, False, host.os.profile.family))
        names += [GuestName(g.name, host.name, True, host.os.profile.family)
                  for g in host.guests]
    return names


def not_running_in(status: dict[str, Any]) -> list[str]:
    """``name (state)`` for each L1 and L2 that `status --json` does not show running."""
    seen = []
    for host in status.get("hosts", []):
        seen.append(host)
        seen += host.get("guests", [])
    return [f"{g['name']} ({g['state']})" for g in seen if g.get("state") != "running"]


FactsReader = Callable[[str], HostFacts]


def _read_facts(uri: str) -> HostFacts:
    from nestlab.host.facts import read_host_facts

    return read_host_facts(uri, data_root())


@dataclass
class LabSession:
    """One lab for one test run. ``reuse``: attach to a lab that is up, never take it
    down; ``keep``: leave a lab this run brought up. ``up`` and ``down`` are nestlab's
    own (``nestlab.commands``), run in this process with their progress on stderr."""

    lab_file: Path
    sandbox: bool = False
    seat: int | None = None
    """Seat N of a lab with seats (the lab <lab>-sNN); a lab with seats needs one."""
    reuse: bool = False
    keep: bool = False
    uri: str = field(default_factory=lambda: os.environ.get("LIBVIRT_DEFAULT_URI",
                                                            DEFAULT_URI))
    read_facts: FactsReader | None = None
    """How L0's facts are read (default: this machine's, as `nestlab up` reads them)."""
    brought_up: bool = False
    proofs: list[dict[str, Any]] = field(default_factory=list)
    _shells: dict[str, Shell] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from nestlab.commands.selection import labs_of_file

        # A bad lab file fails here, before anything runs.
        labs = labs_of_file(load_lab(self.lab_file), self.seat, str(self.lab_file))
        if len(labs) > 1:
            raise InputError(f"lab {labs[0].name[:-len('-s01')]} has {len(labs)} seats: a "
                             "test run uses one",
                             hint="Pass --nestlab-seat N (`nestlab verify --seat N`).")
        self.lab = labs[0]
        self.lab_dir = lab_dir_of(self.lab.name)

    def start(self) -> LabHandle:
        if self.reuse:
            not_running = not_running_in(self.status())
            if not_running:
                raise LabRunFailed(f"lab {self.lab.name} is not up: {', '.join(not_running)} "
                                   "(--nestlab-reuse attaches to a lab that is up)",
                                   hint=f"`nestlab up -f {self.lab_file}` first, or leave out "
                                        "--nestlab-reuse to let the run bring it up.")
        else:
            from nestlab.commands.up import up

            self.brought_up = True  # from here on, whatever happens, `stop` takes it down
            proofs = up(self.lab, self.lab_file, self.lab_dir, self.uri, self.sandbox,
                        self.read_facts or _read_facts,
                        Reporter(self.lab.name, self.lab_dir, "up"))
            self.proofs = [asdict(p) for p in proofs]
        return LabHandle(self)

    def stop(self) -> None:
        """Close every guest session; take the lab down if this run brought it up."""
        for shell in self._shells.values():
            shell.close()
        self._shells.clear()
        if self.brought_up and not self.keep and not self.reuse:
            from nestlab.commands.down import down

            down(self.lab_dir, False, Reporter(self.lab.name, self.lab_dir, "down"), self.uri)

    def status(self) -> dict[str, Any]:
        from nestlab.commands.status import lab_status
        from nestlab.report import status_json

        return status_json(lab_status(LabContext.load(self.lab_dir)))

    def shell(self, name: str) -> Shell:
        if name not in self._shells:
            ctx = LabContext.load(self.lab_dir)
            host, guest = ctx.find(name)
            self._shells[name] = driver_for(ctx, host).open_shell(host, guest)
        return self._shells[name]


class LabHandle:
    """What tests get: the lab's guests, commands in them, testinfra hosts, status."""

    def __init__(self, session: LabSession) -> None:
        self._session = session
        self.name = session.lab.name
        self.lab_file = session.lab_file
        self.lab_dir = session.lab_dir
        self.guests = guests_of(session.lab)

    @property
    def proofs(self) -> list[dict[str, Any]]:
        """The L2 proofs of the ``up`` this run made (empty when attached)."""
        return self._session.proofs

    def status(self) -> dict[str, Any]:
        """What ``nestlab status --json`` prints, as a dict."""
        return self._session.status()

    def exec(self, name: str, *argv: str) -> CommandResult:
        """Run a command (an argument list, quoted for the guest's shell) on a guest."""
        return self._session.shell(name).run(shlex.join(argv))

    def shell(self, name: str, command: str) -> CommandResult:
        """Run a command line in the guest's shell (sh on Linux, PowerShell on Windows)."""
        return self._session.shell(name).run(command)

    def host(self, name: str) -> Any:
        """A testinfra host for any L1 or L2 (an L2 through its L1), over the lab's own
        pinned sessions."""
        import testinfra.host

        from nestlab.testinfra_backend import NestlabBackend

        shell = self._session.shell(name)
        return testinfra.host.Host(NestlabBackend(name, shell))
