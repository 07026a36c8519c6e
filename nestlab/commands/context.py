"""A brought-up lab, as status, exec, ssh and down see it: its record and its plan.

What differs between L1 operating systems is asked of the L1's driver
(``nestlab.drivers.driver_for``), never decided here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import libvirt

from nestlab.errors import InputError, NestlabError
from nestlab.plan import GuestPlan, HostPlan, Plan
from nestlab.sandbox import Sandbox, is_running
from nestlab.state.record import LabRecord, load_plan, load_record, require_lab_dir
from nestlab.transport.node import NODE_TIMEOUT, reach_node
from nestlab.virt.connection import LibvirtError, connect
from nestlab.virt.nodefiles import needs_copies


class NoSuchGuest(InputError):
    """A name that is neither an L1 nor an L2 of the lab: bad input, exit 2."""


@dataclass(frozen=True)
class LabContext:
    lab_dir: Path
    record: LabRecord
    plan: Plan
    redefine: frozenset[str] = frozenset()
    """Guests (L1s, L2s) whose definition this `up` changes: redefined and restarted."""

    @classmethod
    def load(cls, lab_dir: Path) -> LabContext:
        """The lab from its folder (record and saved plan; the lab file is not read). A
        missing lab is ``NoSuchLab``, damaged state an ``InputError`` naming the file."""
        record = load_record(require_lab_dir(lab_dir))
        plan, _lab_file_hash = load_plan(lab_dir)
        return cls(lab_dir, record, plan)

    @property
    def name(self) -> str:
        return self.plan.lab

    @property
    def sandbox(self) -> Sandbox | None:
        return Sandbox(self.plan.lab, self.lab_dir / "sandbox") if self.record.sandbox else None

    def libvirt(self) -> libvirt.virConnect:
        try:
            if self.record.node is not None:
                reach_node(self.record.uri, NODE_TIMEOUT)  # a node that is down: fast
            return connect(self.record.uri)
        except LibvirtError as exc:
            if self.record.node is not None:
                raise LibvirtError(
                    f"node {self.record.node} does not answer ({exc.message})",
                    hint=f"Is libvirtd running on it, and sshd? `virsh -c {self.record.uri} "
                         "uri` asks it; the lab's other seats do not depend on it.") from None
            if not self.record.sandbox:
                raise
            raise LibvirtError(
                f"the sandbox libvirtd of lab {self.name} does not answer ({exc.message})",
                hint="`nestlab up` starts the sandbox again; `nestlab down` removes the lab "
                     "whether it answers or not.") from None

    def require_sandbox_running(self) -> None:
        """Commands that change guests need the lab's libvirt; a sandbox's is started by
        `up` only (it needs root and the lab file's choice of --sandbox)."""
        box = self.sandbox
        if box is not None and not is_running(box):
            raise NestlabError(f"lab {self.name}'s sandbox is not running",
                               hint=f"`nestlab up --sandbox -f {self.record.lab_file}` starts "
                                    "it and the lab.")

    def require_local_disks(self, command: str) -> None:
        """Disk layers (baselines, snapshots, rebuilt disks) are this host's files; a lab
        on another machine's node has its disks there: refused, exit 2."""
        if needs_copies(self.record.uri, self.record.node):
            raise InputError(f"lab {self.name} runs on node {self.record.node}: {command} "
                             "works on disks on this host, not yet on a node's",
                             hint="`nestlab down` and `up` again start it afresh.")

    def find(self, name: str) -> tuple[HostPlan, GuestPlan | None]:
        """An L1 by name -> (host, None); an L2 -> (its L1, guest)."""
        for host in self.plan.hosts:
            if host.name == name:
                return host, None
            for guest in host.guests:
                if guest.name == name:
                    return host, guest
        names = [h.name for h in self.plan.hosts] + [
            g.name for h in self.plan.hosts for g in h.guests]
        raise NoSuchGuest(f"lab {self.plan.lab} has no guest named {name!r}",
                          hint=f"Its guests: {', '.join(names)}.")
