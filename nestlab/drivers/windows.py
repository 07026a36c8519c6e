"""Windows Server L1s with Hyper-V: reached over WinRM (NTLM, encrypted) with a password
made per L1, provisioned with nestlab's PowerShell scripts, their L2s Hyper-V VMs
booting per-L2 prime ISOs. No SSH into them, no commands in their L2s."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, cast

import libvirt

from nestlab.build.answerfile import l1_password, l1_password_path
from nestlab.build.images import BuiltImage
from nestlab.drivers.base import (
    BootWatch,
    ConsoleLog,
    L1Driver,
    Proof,
    RemoteAccess,
    Say,
    Shell,
    Timeouts,
)
from nestlab.errors import NestlabError
from nestlab.plan import GuestPlan, HostPlan
from nestlab.provision import windows
from nestlab.render import render_domain_xml
from nestlab.state.keys import vnc_password, vnc_password_path
from nestlab.steps import Step
from nestlab.transport.base import CommandResult, Transport
from nestlab.transport.winrm import WinRMTransport
from nestlab.virt import disks, objects
from nestlab.virt.screens import ScreenRecorder, latest_screenshot, screenshots_every
from nestlab.waiting import Cancelled

if TYPE_CHECKING:
    from nestlab.commands.context import LabContext

SCREEN_INTERVAL = 5.0
"""How often `up` keeps a screenshot of a Windows L1 while it waits for WinRM."""


def screens_folder(host: HostPlan) -> Path:
    """Where a Windows L1's screenshots are kept: in its folder in the lab."""
    return host.disk_path.parent / "screens"


class ScreenNote(BootWatch):
    """Names the latest screenshot at the end of each waiting line."""

    def __init__(self, recorder: ScreenRecorder) -> None:
        self.recorder = recorder

    def note(self) -> str:
        return f"; {self.recorder.where()}" if self.recorder.latest else ""


def _ps(session: Transport) -> windows.PowerShellSession:
    """A Windows L1's session runs PowerShell (WinRMTransport; a FAKE L1 in tests)."""
    return cast(windows.PowerShellSession, session)


class WindowsDriver(L1Driver):
    family = "windows"
    reach_phase = "winrm"

    def session(self, host: HostPlan) -> WinRMTransport:
        return WinRMTransport(host.name, str(host.nics[0].ip), "Administrator",
                              l1_password(self.ctx.lab_dir, host.name),
                              netns=self.ctx.record.netns)

    def domain_xml(self, host: HostPlan) -> str:
        """With the L1's VNC password: Windows' screen may show a logged-on session."""
        return render_domain_xml(self.ctx.plan, host,
                                 vnc_password(self.ctx.lab_dir, host.name))

    def timeouts(self) -> Timeouts:
        # The first boot after sysprep (specialize, device detection, OOBE, a reboot).
        return Timeouts(boot=1800, l2=300 if self.ctx.plan.accel == "tcg" else 180,
                        reboot=1200)

    def ensure_boot_media(self, host: HostPlan, base: BuiltImage) -> bool:
        return disks.ensure_answer_medium(host, l1_password(self.ctx.lab_dir, host.name))

    def provision_steps(self, host: HostPlan, session: Transport,
                        images: dict[str, BuiltImage], say: Say) -> list[Step]:
        isos: dict[str, Path] = {}
        steps = [Step(host.name, "L2 prime ISOs", partial(self._prime_isos, host, images, isos),
                      skip=None if host.guests else "the L1 has no L2s")]
        steps += windows.provision_steps(_ps(session), host, isos, say, self.timeouts().reboot)
        return steps

    def _prime_isos(self, host: HostPlan, images: dict[str, BuiltImage],
                    isos: dict[str, Path]) -> bool:
        """Each L2's bootable ISO on L0 (its static address; WinNAT has no DHCP)."""
        made = False
        for guest in host.guests:
            existed = disks.prime_iso_path(host, guest).exists()
            isos[guest.name] = disks.ensure_prime_iso(host, guest, images[guest.image],
                                                      self.ctx.plan.public_key or "")
            made = made or not existed
        return made

    def prove(self, host: HostPlan, session: Transport, guest: GuestPlan, say: Say,
              cancel: threading.Event) -> Proof:
        seen = windows.prove(_ps(session), host, guest, self.timeouts().l2,
                             lambda why: say(guest.name, f"waiting for it: {why}"))
        return Proof(guest=guest.name, l1=host.name, address=seen.address,
                     evidence=f"Hyper-V says {seen.state}, heartbeat {seen.heartbeat}; its "
                              f"SSH port answers inside {host.name}")

    @contextlib.contextmanager
    def watch_boot(self, host: HostPlan, conn: libvirt.virConnect | None
                   ) -> Iterator[BootWatch]:
        """A Windows L1's first boot (specialize, OOBE, a reboot, the first logon that
        enables WinRM) shows only its screen: a screenshot every few seconds in its
        folder, and a wait that fails ends with the last one and the step."""
        dom = _domain(conn, host)
        if dom is None:
            yield BootWatch()
            return
        recorder = ScreenRecorder(screens_folder(host))
        with screenshots_every(recorder, dom, SCREEN_INTERVAL):
            try:
                yield ScreenNote(recorder)
            except Cancelled:
                raise  # another L1 failed: that one's error is the one to show
            except NestlabError as exc:
                exc.message = (f"{exc.message} (step: first boot, waiting for WinRM); "
                               f"{recorder.where()}")
                exc.args = (exc.message,)
                raise

    def boot_screen(self, host: HostPlan) -> Path | None:
        return latest_screenshot(screens_folder(host))

    def guest_domain(self, guest: GuestPlan) -> str:
        return guest.name  # a Hyper-V VM is named after the guest

    def proof_phase(self, host: HostPlan) -> str:
        return f"proven (Hyper-V in {host.name})"

    def guest_states(self, host: HostPlan, session: Transport) -> dict[str, str]:
        states = windows.run_json(_ps(session), "guest-states", Names=[g.name for g in host.guests])
        return {name: "running" if state == "Running" else str(state).lower()
                for name, state in states.items() if state != "absent"}

    def remove_guests(self, host: HostPlan, session: Transport) -> None:
        windows.remove_guests(_ps(session), host)

    def stop_guests(self, host: HostPlan, session: Transport, timeout: float) -> list[str]:
        return windows.stop_guests(_ps(session), host, timeout)

    def pause_guests(self, host: HostPlan, session: Transport) -> list[str]:
        return windows.pause_guests(_ps(session), host)

    def resume_guests(self, host: HostPlan, session: Transport) -> list[str]:
        return windows.resume_guests(_ps(session), host)

    def restart_guest(self, host: HostPlan, session: Transport, guest: GuestPlan) -> None:
        windows.restart_guest(_ps(session), guest)

    def remove_guest(self, host: HostPlan, session: Transport, guest: GuestPlan) -> list[str]:
        return windows.remove_guest(_ps(session), guest)

    def run(self, host: HostPlan, guest: GuestPlan | None, argv: list[str]) -> CommandResult:
        if guest is not None:
            raise _no_commands_in(host, guest)
        session = self.session(host)
        try:
            return session.run(argv)
        finally:
            session.close()

    def open_shell(self, host: HostPlan, guest: GuestPlan | None) -> Shell:
        if guest is not None:
            raise _no_commands_in(host, guest)
        return _PowerShellShell(self.session(host))

    def console(self, host: HostPlan, guest: GuestPlan | None) -> list[str] | str:
        """No serial console: where the L1's screen is (VNC on 127.0.0.1) and its password."""
        if guest is not None:
            raise NestlabError(f"{guest.name}: a Hyper-V L2 has no console nestlab reaches",
                               hint=f"Its screen is in Hyper-V Manager (vmconnect) inside "
                                    f"{host.name}; `nestlab console {host.name}` shows "
                                    f"{host.name}'s.")
        port = _vnc_port(self.ctx, host)
        password = vnc_password(self.ctx.lab_dir, host.name)
        where = f"127.0.0.1:{port}"
        lines = [f"{host.name}: its screen is VNC on {where}, password {password} "
                 f"(kept in {vnc_password_path(self.ctx.lab_dir, host.name)})"]
        netns = self.ctx.record.netns
        if netns:
            lines.append(f"  it listens inside the lab's namespace: ip netns exec {netns} "
                         f"vncviewer {where}")
        else:
            lines.append(f"  here: vncviewer {where}; from another machine: ssh -L "
                         f"{port}:127.0.0.1:{port} root@THIS-HOST, then vncviewer "
                         f"localhost:{port}")
        return "\n".join(lines)

    def remote_access(self, host: HostPlan) -> RemoteAccess:
        """Administrator's password and WinRM (HTTP 5985, NTLM with message encryption, as
        winrm.ps1 opens it); the screen (VNC) with its password while the L1 runs. RDP is
        not enabled by nestlab."""
        screen = None
        with contextlib.suppress(NestlabError, libvirt.libvirtError):
            screen = _vnc_port(self.ctx, host)
        return RemoteAccess(
            secrets={f"{host.name}.password": l1_password_path(self.ctx.lab_dir, host.name),
                     f"{host.name}.vnc": vnc_password_path(self.ctx.lab_dir, host.name)},
            ports=(("WinRM (HTTP, NTLM with message encryption)", 5985),),
            screen_port=screen)

    def read_console_log(self, host: HostPlan, guest: GuestPlan | None,
                         lines: int) -> ConsoleLog:
        """Neither a Windows L1 nor a Hyper-V L2 has a serial console that is logged."""
        if guest is None:
            raise NestlabError(f"{host.name}: a Windows L1 has no serial console log",
                               hint=f"`nestlab console {host.name}` says how to see its screen.")
        raise NestlabError(f"{guest.name}: a Hyper-V L2 has no console log nestlab keeps",
                           hint=f"Its screen is in Hyper-V Manager (vmconnect) inside "
                                f"{host.name}.")


def _no_commands_in(host: HostPlan, guest: GuestPlan) -> NestlabError:
    return NestlabError(
        f"{guest.name} runs under Hyper-V in {host.name}; nestlab reaches such L2s only "
        "through Hyper-V (`nestlab status`), not with commands",
        hint=f"Run a command in {host.name} instead, e.g. Get-VM {guest.name}.")


class _PowerShellShell(Shell):
    """Command lines run as PowerShell scripts over one WinRM session."""

    def __init__(self, session: WinRMTransport) -> None:
        self._session = session

    def run(self, command: str) -> CommandResult:
        return self._session.run_script("command", command)

    def close(self) -> None:
        self._session.close()


def _vnc_port(ctx: LabContext, host: HostPlan) -> int:
    """The port libvirt gave the running L1's VNC screen (asked on a connection of its own)."""
    conn = ctx.libvirt()
    try:
        dom = objects.owned_domain(conn, ctx.plan.lab, host.domain_name)
        if dom is None or not dom.isActive():
            raise NestlabError(f"{host.name} is not running: it has no screen to show",
                               hint="`nestlab up` starts it.")
        port = objects.vnc_port(dom)
    finally:
        conn.close()
    if port is None:
        raise NestlabError(f"{host.name}: libvirt shows no VNC port for it")
    return port


def _domain(conn: libvirt.virConnect | None, host: HostPlan) -> libvirt.virDomain | None:
    """The L1's domain to take screenshots of; None when there is none to ask."""
    if conn is None:
        return None
    try:
        return conn.lookupByName(host.domain_name)
    except libvirt.libvirtError:
        return None  # the wait itself says what is wrong
