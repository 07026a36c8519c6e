"""What every transport offers: run a command, copy a file, wait, reconnect."""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nestlab.errors import NestlabError


class TransportError(NestlabError):
    """A guest could not be reached, or a command could not be sent to it."""


class Unreachable(TransportError):
    """The guest did not answer before the deadline (it may still be booting), as opposed
    to a guest that answered and refused nestlab (a rejected key, a changed host key)."""


class CommandFailed(NestlabError):
    """A command ran on a guest and failed; carries its result."""

    def __init__(self, guest: str, result: CommandResult) -> None:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        super().__init__(
            f"{guest}: `{result.command}` exited {result.exit_status}"
            + (":\n  " + "\n  ".join(detail) if detail else "")
        )
        self.result = result


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class Transport(abc.ABC):
    """A session with one guest. Arguments are quoted here, never pasted by callers."""

    name: str

    @abc.abstractmethod
    def run(self, argv: list[str], timeout: float = 600.0) -> CommandResult:
        """Run a command given as an argument list; never raises on a non-zero exit."""

    @abc.abstractmethod
    def put(self, local: Path, remote: str) -> None:
        """Copy a local file to the guest (atomically: a temporary name, then a rename)."""

    @abc.abstractmethod
    def put_text(self, text: str, remote: str, mode: int = 0o644) -> None:
        """Write text to a file on the guest."""

    @abc.abstractmethod
    def wait_until_reachable(self, timeout: float,
                             waiting: Callable[[str], None] | None = None,
                             cancel: threading.Event | None = None) -> None:
        """Connect, retrying while the guest boots; ``waiting`` hears why tries fail;
        ``cancel`` set by another thread stops the wait (``waiting.Cancelled``)."""

    @abc.abstractmethod
    def reconnect(self, timeout: float) -> None:
        """Drop the session and open it again (after a reboot), waiting up to ``timeout``."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def run_batch(self, argvs: Sequence[list[str]], timeout: float = 600.0
                  ) -> list[CommandResult]:
        """Run commands one after another; a transport that can send them all in one
        round trip does (``batch.batch_script``). One result per command, in order."""
        return [self.run(argv, timeout) for argv in argvs]

    def check(self, argv: list[str], timeout: float = 600.0) -> CommandResult:
        """Run and raise ``CommandFailed`` on a non-zero exit."""
        result = self.run(argv, timeout)
        if not result.ok:
            raise CommandFailed(self.name, result)
        return result

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
