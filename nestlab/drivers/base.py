"""What every L1 driver offers: everything about an L1 that depends on its operating
system. Commands ask the driver; they never look at the OS themselves."""

from __future__ import annotations

import abc
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, NoReturn

import libvirt

from nestlab.build.images import BuiltImage
from nestlab.plan import GuestPlan, HostPlan
from nestlab.render import render_domain_xml
from nestlab.steps import Step
from nestlab.transport.base import CommandResult, Transport

if TYPE_CHECKING:
    from nestlab.commands.context import LabContext

Say = Callable[[str, str], None]


@dataclass(frozen=True)
class Proof:
    """What shows an L2 is really up, in the words of the check that showed it."""

    guest: str
    l1: str
    address: str
    evidence: str


@dataclass(frozen=True)
class ConsoleLog:
    """The end of a guest's serial console log, and where it was read."""

    guest: str
    where: str
    """``L0`` for an L1's log, the L1's name for an L2's."""
    path: str
    lines: list[str]


@dataclass(frozen=True)
class RemoteAccess:
    """What a person reaching the L1 from elsewhere (a student's handout) needs besides the
    lab's SSH key: the lab's secret files for it and the TCP ports it serves."""

    secrets: dict[str, Path]
    """A file name in the handout -> the lab's file it is copied from."""
    ports: tuple[tuple[str, int], ...]
    """(what, port on the L1's address)."""
    screen_port: int | None = None
    """The port of its screen (VNC on 127.0.0.1 of this host), when it has one now."""


CONSOLE_LOG_BYTES = 1024 * 1024
"""At most this much of a console log's end is read, however many lines are asked for."""


@dataclass(frozen=True)
class Timeouts:
    """How long an L1 may take to answer after a (first) boot, and an L2 to be proven."""

    boot: float
    l2: float
    reboot: float = 1200


class Shell(abc.ABC):
    """One guest's command session, kept open for many commands (the pytest plugin's
    testinfra hosts): a shell command line in, its result out."""

    @abc.abstractmethod
    def run(self, command: str) -> CommandResult:
        """Run one command line in the guest's own shell."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the session (and the L1's, for an L2 reached through it)."""


class BootWatch:
    """What `up` shows of an L1 while it waits for its first answer, beyond the wait's own
    words: nothing, unless its family has something to show (a Windows L1's screen)."""

    def note(self) -> str:
        """The end of each waiting line ('' for nothing)."""
        return ""

    def await_ready(self, seconds: float, cancel: threading.Event,
                    progress: Callable[[str], None]) -> bool:
        """Wait, up to ``seconds``, for the L1 to say it is ready to be reached (then its
        first try answers); False at once where it says nothing, so it is tried until it
        answers."""
        return False


class L1Driver(abc.ABC):
    """One L1 operating-system family: how it is reached, provisioned, proven and emptied."""

    family: ClassVar[str]
    reach_phase: ClassVar[str]
    """The name of the step that waits for the L1 to answer (``ssh``, ``winrm``)."""
    redefines_guests: ClassVar[bool] = False
    """Whether `up` can change its L2s' sizes (redefine and restart them)."""

    def __init__(self, ctx: LabContext) -> None:
        self.ctx = ctx

    @abc.abstractmethod
    def session(self, host: HostPlan) -> Transport:
        """A (not yet connected) session with the L1."""

    def domain_xml(self, host: HostPlan) -> str:
        """The L1's libvirt domain XML as ``up`` defines it (secrets in, where it has any)."""
        return render_domain_xml(self.ctx.plan, host)

    @abc.abstractmethod
    def timeouts(self) -> Timeouts:
        """Deadlines for this family under the lab's acceleration."""

    @abc.abstractmethod
    def ensure_boot_media(self, host: HostPlan, base: BuiltImage) -> bool:
        """The L1's files on L0 besides its disk (kernel, seed, answer medium)."""

    @abc.abstractmethod
    def provision_steps(self, host: HostPlan, session: Transport,
                        images: dict[str, BuiltImage], say: Say) -> list[Step]:
        """Inside the L1, up to its L2s started: the hypervisor, the L2 network, the L2s."""

    @abc.abstractmethod
    def prove(self, host: HostPlan, session: Transport, guest: GuestPlan, say: Say,
              cancel: threading.Event) -> Proof:
        """Show that an L2 runs, or raise."""

    @abc.abstractmethod
    def guest_states(self, host: HostPlan, session: Transport) -> dict[str, str]:
        """Each L2's state as the L1's hypervisor says it, by L2 name; an L2 it does not
        have is left out (absent). Raises when the hypervisor cannot be asked (its L2s
        are then unknown, not absent)."""

    @abc.abstractmethod
    def remove_guests(self, host: HostPlan, session: Transport) -> None:
        """Stop and remove the L2s inside a running L1 (`down`, L2s first)."""

    @abc.abstractmethod
    def stop_guests(self, host: HostPlan, session: Transport, timeout: float) -> list[str]:
        """Shut the L1's L2s down cleanly (their own shutdown, for at most ``timeout``
        seconds, then powered off), so that the L1's disk holds them consistent: before a
        baseline or a snapshot. Returns the L2s that had to be powered off."""

    @abc.abstractmethod
    def pause_guests(self, host: HostPlan, session: Transport) -> list[str]:
        """Pause the L1's running L2s (their memory stays in the L1's), so that the L1's
        memory and disk hold them consistent when the L1 is saved: before a baseline or
        a snapshot with memory. Returns the L2s it paused."""

    @abc.abstractmethod
    def resume_guests(self, host: HostPlan, session: Transport) -> list[str]:
        """After the L1 was restored from a saved state: its clock set to now (it stood
        still while saved), its paused L2s (paused before the save) resumed and their
        clocks set too. Returns the L2s it resumed."""

    @abc.abstractmethod
    def restart_guest(self, host: HostPlan, session: Transport, guest: GuestPlan) -> None:
        """Power one L2 off and on again (`restart`): a new boot of the same disk."""

    @abc.abstractmethod
    def remove_guest(self, host: HostPlan, session: Transport, guest: GuestPlan) -> list[str]:
        """Remove one L2 and its disk inside the L1, so that the L1's provisioning steps
        make it afresh (`rebuild`); returns what was removed."""

    @abc.abstractmethod
    def run(self, host: HostPlan, guest: GuestPlan | None, argv: list[str]) -> CommandResult:
        """Run a command on the L1, or on one of its L2s (`exec`)."""

    @abc.abstractmethod
    def open_shell(self, host: HostPlan, guest: GuestPlan | None) -> Shell:
        """A session for many commands on the L1 or one of its L2s (the pytest plugin)."""


    def watch_boot(self, host: HostPlan, conn: libvirt.virConnect | None
                   ) -> contextlib.AbstractContextManager[BootWatch]:
        """Around `up`'s wait for the L1 to answer; may add to the wait's error. Nothing by
        default: a Linux L1's serial console is logged instead."""
        return contextlib.nullcontext(BootWatch())

    def boot_screen(self, host: HostPlan) -> Path | None:
        """The latest screenshot `up` kept of the L1's screen while it booted, if any."""
        return None

    def guest_domain(self, guest: GuestPlan) -> str:
        """The name the L1's hypervisor knows the L2 by."""
        return guest.domain_name

    def proof_phase(self, host: HostPlan) -> str:
        """The name of the step that proves an L2 of this L1."""
        return f"proven (in {host.name})"

    def ssh_names(self, host: HostPlan) -> list[str]:
        """The guests OpenSSH reaches (`ssh`, `ssh-config`); none unless a driver says so."""
        return []

    def remote_access(self, host: HostPlan) -> RemoteAccess:
        """Secrets and ports beyond SSH (`ssh_names`) a handout gives: none by default."""
        return RemoteAccess({}, ())

    @abc.abstractmethod
    def console(self, host: HostPlan, guest: GuestPlan | None) -> list[str] | str:
        """The command line that attaches to the guest's console, or (a guest with a
        screen only) a text that says where its screen is and how to open it."""

    @abc.abstractmethod
    def read_console_log(self, host: HostPlan, guest: GuestPlan | None,
                         lines: int) -> ConsoleLog:
        """The last ``lines`` lines of the L1's console log (on L0), or of one of its L2s'
        (inside the L1); raises when the family keeps none."""


class NotConnected(Transport):
    """The session of an L1 that is not reached (``nestlab plan`` lists the steps inside an
    L1 without acting): any use is a bug, and says so."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _refuse(self) -> NoReturn:
        raise AssertionError(f"{self.name}: a step used the L1's session while only planning")

    def run(self, argv: list[str], timeout: float = 600.0) -> CommandResult:
        self._refuse()

    def put(self, local: Path, remote: str) -> None:
        self._refuse()

    def put_text(self, text: str, remote: str, mode: int = 0o644) -> None:
        self._refuse()

    def wait_until_reachable(self, timeout: float,
                             waiting: Callable[[str], None] | None = None,
                             cancel: threading.Event | None = None) -> None:
        self._refuse()

    def reconnect(self, timeout: float) -> None:
        self._refuse()

    def close(self) -> None:
        pass
