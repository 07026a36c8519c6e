"""A brought-up lab, as status, exec, ssh and down see it: its record, plan and transports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import libvirt

from nestlab.errors import NestlabError
from nestlab.labkeys import known_hosts_path, load_private_key
from nestlab.plan import GuestPlan, HostPlan, Plan
from nestlab.sandbox import Sandbox, open_socket
from nestlab.state import LabRecord, load_plan, load_record, require_lab_dir
from nestlab.transport.base import CommandResult
from nestlab.transport.ssh import SSHTransport
from nestlab.virt.connection import connect

if TYPE_CHECKING:
    from nestlab.transport.winrm import WinRMTransport

class NoSuchGuest(NestlabError):
    """A name that is neither an L1 nor an L2 of the lab."""


@dataclass(frozen=True)
class LabContext:
    lab_dir: Path
    record: LabRecord
    plan: Plan

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
        return connect(self.record.uri)

    def l1_transport(self, host: HostPlan) -> SSHTransport:
        address = str(host.nics[0].ip)
        netns = self.record.netns
        return SSHTransport(host.name, lambda timeout: open_socket(netns, address, 22, timeout),
                            load_private_key(self.lab_dir), known_hosts_path(self.lab_dir))

    def windows_transport(self, host: HostPlan) -> WinRMTransport:
        from nestlab.answerfile import l1_password
        from nestlab.transport.winrm import WinRMTransport

        return WinRMTransport(host.name, str(host.nics[0].ip), "Administrator",
                              l1_password(self.lab_dir, host.name), netns=self.record.netns)

    def l2_transport(self, l1: SSHTransport, guest: GuestPlan) -> SSHTransport:
        address = str(guest.ip)
        return SSHTransport(guest.name,
                            lambda timeout: l1.open_channel(address, 22, timeout),
                            load_private_key(self.lab_dir), known_hosts_path(self.lab_dir))

    def run(self, name: str, argv: list[str]) -> CommandResult:
        """Run a command on a guest: an L1 over SSH or WinRM, an L2 over SSH via its L1."""
        host, guest = self.find(name)
        if host.os.is_windows:
            if guest is not None:
                raise NestlabError(
                    f"{name} runs under Hyper-V in {host.name}; nestlab reaches such L2s only "
                    "through Hyper-V (`nestlab status`), not with commands",
                    hint=f"Run a command in {host.name} instead, e.g. Get-VM {name}.")
            session = self.windows_transport(host)
            try:
                return session.run(argv)
            finally:
                session.close()
        l1 = self.l1_transport(host)
        try:
            if guest is None:
                return l1.run(argv)
            l2 = self.l2_transport(l1, guest)
            try:
                return l2.run(argv)
            finally:
                l2.close()
        finally:
            l1.close()

    def require_ssh(self, name: str) -> None:
        """OpenSSH reaches Linux L1s and the L2s inside them, not Windows."""
        host, _guest = self.find(name)
        if host.os.is_windows:
            raise NestlabError(f"{name}: no SSH into a Windows L1 or its Hyper-V guests",
                               hint=f"`nestlab exec {host.name} -- Get-VM` runs PowerShell "
                                    "over WinRM.")

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
