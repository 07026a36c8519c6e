"""Linux L1s with KVM and libvirt: reached over SSH (the lab's key, host keys pinned),
their L2s defined in the L1's own libvirt and reached through the L1."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import libvirt

from nestlab.build.images import BuiltImage
from nestlab.drivers.base import (
    CONSOLE_LOG_BYTES,
    BootWatch,
    ConsoleLog,
    L1Driver,
    Proof,
    Say,
    Shell,
    Timeouts,
)
from nestlab.errors import NestlabError
from nestlab.files import last_lines, read_tail_bytes
from nestlab.plan import GuestPlan, HostPlan
from nestlab.provision import linux
from nestlab.state.keys import known_hosts_path, load_private_key
from nestlab.steps import Step
from nestlab.transport.base import CommandResult, Transport, Unreachable
from nestlab.transport.node import open_stream
from nestlab.transport.ssh import SSHTransport
from nestlab.virt import disks, volumes
from nestlab.virt.nodefiles import needs_copies
from nestlab.waiting import hear_within

_ONE_TRY = 0.1
"""A wait that makes one attempt (its connection still gets its own timeout)."""


class LinuxDriver(L1Driver):
    family = "linux"
    reach_phase = "ssh"
    redefines_guests = True

    def session(self, host: HostPlan) -> SSHTransport:
        """The L1's SSH: from this host, or through the node the lab is placed on."""
        address, record = str(host.nics[0].ip), self.ctx.record
        return SSHTransport(host.name, lambda timeout: open_stream(record.uri, record.netns,
                                                                   address, 22, timeout),
                            load_private_key(self.ctx.lab_dir),
                            known_hosts_path(self.ctx.lab_dir))

    def l2_session(self, l1: Transport, guest: GuestPlan) -> SSHTransport:
        """An L2's SSH, through a TCP channel its L1 opens."""
        assert isinstance(l1, SSHTransport)
        address = str(guest.ip)
        return SSHTransport(guest.name, lambda timeout: l1.open_channel(address, 22, timeout),
                            load_private_key(self.ctx.lab_dir),
                            known_hosts_path(self.ctx.lab_dir))

    def timeouts(self) -> Timeouts:
        # Under emulation an L1 boots to SSH in ~30-40 s; allow for a loaded machine.
        return Timeouts(boot=600, l2=300) if self.ctx.plan.accel == "tcg" else \
            Timeouts(boot=300, l2=180)

    def ensure_boot_media(self, host: HostPlan, base: BuiltImage) -> bool:
        acted = disks.ensure_boot_files(host, base)
        acted = disks.ensure_seed(host, self.ctx.plan.public_key or "", self.ctx.lab_dir) or acted
        return disks.ensure_console_log(host) or acted

    def provision_steps(self, host: HostPlan, session: Transport,
                        images: dict[str, BuiltImage], say: Say) -> list[Step]:
        return linux.provision_steps(session, self.ctx.plan, host, images, say,
                                     self.ctx.redefine)

    def prove(self, host: HostPlan, session: Transport, guest: GuestPlan, say: Say,
              cancel: threading.Event) -> Proof:
        """The L2's own SSH server answers through the L1 and runs commands. An L2 that
        does not answer at the first try is awaited on its console, where it announces
        its SSH server (the L1 follows the log, so nestlab hears of it at once); SSH is
        then tried until it answers, which covers an announcement that was missed."""
        deadline = time.monotonic() + self.timeouts().l2
        heard: float | None = None
        l2 = self.l2_session(session, guest)
        try:
            try:
                l2.wait_until_reachable(_ONE_TRY)  # an L2 that is up: no watch, no wait
            except Unreachable:
                if hear_within(partial(linux.await_announcement, session, guest.console_log),
                               deadline - time.monotonic(), cancel, partial(say, guest.name),
                               f"waiting for it to announce itself in {host.name}"):
                    heard = time.monotonic()
                l2.wait_until_reachable(max(deadline - time.monotonic(), 1.0), lambda why: say(
                    guest.name, f"waiting for SSH through {host.name} ({why})"), cancel)
            # One command, one round trip: "UPTIME IDLE" then the kernel's release.
            uptime, _idle, kernel = l2.check(
                ["cat", "/proc/uptime", "/proc/sys/kernel/osrelease"]).stdout.split()[:3]
        finally:
            l2.close()
        after = (f", {time.monotonic() - heard:.1f}s after it announced itself"
                 if heard is not None else "")
        return Proof(guest=guest.name, l1=host.name, address=str(guest.ip),
                     evidence=f"its SSH answered through {host.name}: kernel {kernel}, "
                              f"up {float(uptime):.1f}s{after}")

    @contextlib.contextmanager
    def watch_boot(self, host: HostPlan, conn: libvirt.virConnect | None
                   ) -> Iterator[BootWatch]:
        """The L1's console log on L0, where it announces its SSH server."""
        yield ConsoleWatch(host.console_log)

    def guest_states(self, host: HostPlan, session: Transport) -> dict[str, str]:
        states = linux.guest_states(session, [g.domain_name for g in host.guests])
        return {g.name: states[g.domain_name] for g in host.guests if g.domain_name in states}

    def remove_guests(self, host: HostPlan, session: Transport) -> None:
        linux.remove_guests(session, host)

    def stop_guests(self, host: HostPlan, session: Transport, timeout: float) -> list[str]:
        forced = linux.stop_guests(session, [g.domain_name for g in host.guests], timeout)
        return [g.name for g in host.guests if g.domain_name in forced]

    def pause_guests(self, host: HostPlan, session: Transport) -> list[str]:
        paused = linux.pause_guests(session, [g.domain_name for g in host.guests])
        return [g.name for g in host.guests if g.domain_name in paused]

    def resume_guests(self, host: HostPlan, session: Transport) -> list[str]:
        linux.set_clock(session)
        paused = linux.resume_guests(session, [g.domain_name for g in host.guests])
        resumed = [g for g in host.guests if g.domain_name in paused]
        for guest in resumed:
            l2 = self.l2_session(session, guest)
            try:
                l2.wait_until_reachable(self.timeouts().l2)
                linux.set_clock(l2)
            finally:
                l2.close()
        return [g.name for g in resumed]

    def restart_guest(self, host: HostPlan, session: Transport, guest: GuestPlan) -> None:
        linux.restart_guest(session, host, guest)

    def remove_guest(self, host: HostPlan, session: Transport, guest: GuestPlan) -> list[str]:
        return linux.remove_guest(session, guest)

    def run(self, host: HostPlan, guest: GuestPlan | None, argv: list[str]) -> CommandResult:
        l1 = self.session(host)
        try:
            if guest is None:
                return l1.run(argv)
            l2 = self.l2_session(l1, guest)
            try:
                return l2.run(argv)
            finally:
                l2.close()
        finally:
            l1.close()

    def open_shell(self, host: HostPlan, guest: GuestPlan | None) -> Shell:
        l1 = self.session(host)
        return _SSHShell(l1, None if guest is None else self.l2_session(l1, guest))

    def proof_phase(self, host: HostPlan) -> str:
        return f"proven (SSH via {host.name})"

    def ssh_names(self, host: HostPlan) -> list[str]:
        return [host.name, *(g.name for g in host.guests)]

    def console(self, host: HostPlan, guest: GuestPlan | None) -> list[str]:
        if guest is None:
            argv = ["virsh", "-c", self.ctx.record.uri, "console", host.domain_name]
            return argv
        from nestlab.commands.access import write_ssh_config

        argv = ["ssh", "-F", str(write_ssh_config(self.ctx)), "-t", host.name, "virsh",
                "console", guest.domain_name]
        return argv

    def read_console_log(self, host: HostPlan, guest: GuestPlan | None,
                         lines: int) -> ConsoleLog:
        """An L1's serial console is logged on L0 (``HostPlan.console_log``), or on the
        node the lab runs on, read through its libvirt; an L2's inside its L1, by the
        L1's libvirt, read there with ``tail -c``."""
        if guest is None:
            if not host.console_log.exists():
                raise NestlabError(f"{host.name} has no console log yet",
                                   hint="`nestlab up` makes it as it starts the L1.")
            record, where = self.ctx.record, "L0"
            if needs_copies(record.uri, record.node):  # written on its node, read there
                conn, where = self.ctx.libvirt(), f"node {record.node}"
                try:
                    data, cut = volumes.read_tail(conn, host.console_log, CONSOLE_LOG_BYTES)
                finally:
                    conn.close()
            else:
                data, cut = read_tail_bytes(host.console_log, CONSOLE_LOG_BYTES, "console log")
            return ConsoleLog(host.name, where, str(host.console_log),
                              last_lines(data.decode(errors="replace"), lines, cut))
        session = self.session(host)
        try:
            session.wait_until_reachable(30)
            result = session.run(["tail", "-c", str(CONSOLE_LOG_BYTES), guest.console_log])
        finally:
            session.close()
        if not result.ok:
            raise NestlabError(f"{guest.name}: no console log in {host.name} "
                               f"({result.stderr.strip() or f'exit {result.exit_status}'})",
                               hint=f"Its L1's libvirt writes it once the L2 has started "
                                    f"(`nestlab status` shows whether {guest.name} runs).")
        # tail printed all it was asked for: the log is longer, and its first line cut.
        cut = len(result.stdout.encode()) >= CONSOLE_LOG_BYTES
        return ConsoleLog(guest.name, host.name, guest.console_log,
                          last_lines(result.stdout, lines, cut))


class _SSHShell(Shell):
    """Commands over one SSH session (an L2's goes through its L1's, kept open too)."""

    def __init__(self, l1: SSHTransport, l2: SSHTransport | None) -> None:
        self._l1, self._l2 = l1, l2

    def run(self, command: str) -> CommandResult:
        return (self._l2 or self._l1).run(["sh", "-c", command])

    def close(self) -> None:
        if self._l2 is not None:
            self._l2.close()
        self._l1.close()


class ConsoleWatch(BootWatch):
    """A Linux L1 writes ``linux.L1_ANNOUNCEMENT`` on its console once SSH can be reached;
    its console log is on L0, followed here as the L1 follows its L2s' (tail -F)."""

    def __init__(self, console_log: Path) -> None:
        self.console_log = console_log

    def await_ready(self, seconds: float, cancel: threading.Event,
                    progress: Callable[[str], None]) -> bool:
        return hear_within(self._listen, seconds, cancel, progress,
                           "waiting for it to announce SSH on its console")

    def _listen(self, seconds: float) -> bool:
        argv = linux.announcement_watch(str(self.console_log), linux.L1_ANNOUNCEMENT, seconds)
        return subprocess.run(argv, capture_output=True, timeout=seconds + 30,
                              check=False).returncode == 0
