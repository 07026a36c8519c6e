"""WinRM to a Windows L1 with pypsrp: NTLM with message encryption over HTTP 5985.

No Basic auth and no unencrypted traffic (the L1's winrm.ps1 refuses both).
One PowerShell runspace pool is opened per session and reused for every
command: opening one per command is the known slow path. Scripts get their
values as PowerShell parameters, never pasted into the script text.

Every call runs on one worker thread; in a sandbox that thread first enters
the lab's network namespace, so pypsrp's sockets are made inside it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from nestlab.sandbox import enter_netns
from nestlab.transport.base import CommandResult, Transport, TransportError, Unreachable
from nestlab.waiting import NotYet, WaitTimedOut, describe, wait_for

T = TypeVar("T")
Waiting = Callable[[str], None]
WINRM_PORT = 5985
FIRST_BOOT_401 = ("WinRM answers but refuses the lab's password: Windows is probably still "
                  "setting it (first boot)")
"""Why the wait goes on after a 401, as the progress line says it."""


def wsman_options(username: str, password: str) -> dict[str, Any]:
    """How nestlab talks WinRM: the one place these settings are chosen."""
    return {
        "port": WINRM_PORT,
        "ssl": False,
        "auth": "ntlm",
        "encryption": "always",  # NTLM seals every message; HTTP without it is refused
        "username": username,
        "password": password,
        "connection_timeout": 10,
        "operation_timeout": 20,
        "read_timeout": 30,
    }


class RunspaceFactory:
    """Opens pypsrp runspace pools; tests replace it with a fake."""

    def __init__(self, address: str, username: str, password: str) -> None:
        self.address = address
        self.options = wsman_options(username, password)

    def open(self) -> Any:
        from pypsrp.powershell import RunspacePool
        from pypsrp.wsman import WSMan

        pool = RunspacePool(WSMan(self.address, **self.options))
        pool.open()
        return pool

    def invoke(self, pool: Any, build: Callable[[Any], Any]) -> tuple[list[Any], list[str], bool]:
        from pypsrp.powershell import PowerShell

        ps = PowerShell(pool)
        build(ps)
        output = ps.invoke()
        return list(output), [str(e) for e in ps.streams.error], bool(ps.had_errors)

    def copy(self, local: Path, remote: str) -> None:
        from pypsrp.client import Client

        Client(self.address, **self.options).copy(str(local), remote)


def _is_auth_failure(exc: BaseException) -> bool:
    from pypsrp.exceptions import AuthenticationError, WinRMTransportError

    return isinstance(exc, AuthenticationError) or (
        isinstance(exc, WinRMTransportError) and exc.code == 401)


def _is_retryable(exc: BaseException) -> bool:
    """Connection refused, timeouts, and WinRM's answers while a guest boots or reboots."""
    import requests
    from pypsrp.exceptions import WinRMError

    return isinstance(exc, (OSError, requests.exceptions.RequestException, WinRMError))


class WinRMTransport(Transport):
    """A WinRM session with one Windows guest."""

    def __init__(self, name: str, address: str, username: str, password: str,
                 netns: str | None = None, factory: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = name
        self._factory = factory or RunspaceFactory(address, username, password)
        self._pool: Any = None
        self._let_in_before = False
        """Whether WinRM has accepted the password in this session (then a 401 is final)."""
        self._sleep = sleep
        self._worker = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"winrm-{name}",
            initializer=(lambda: enter_netns(netns)) if netns else None)

    def _call(self, fn: Callable[[], T]) -> T:
        return self._worker.submit(fn).result()

    # -- connecting ---------------------------------------------------------------
    def wait_until_reachable(self, timeout: float, waiting: Waiting | None = None,
                             cancel: threading.Event | None = None) -> None:
        """Open the session, retrying while the guest boots.

        Until this session has once been let in, a refused password (401) is retried
        too: Windows may answer WinRM before oobeSystem has set the L1's password
        (a base image from an older nestlab leaves WinRM on at first boot). At the
        deadline the error still names the credentials. Once let in, a 401 fails at
        once: the password was set and accepted, so a refusal is a real change (and
        retrying a wrong password could lock the account out), not the first boot.
        """
        refused = False

        def attempt() -> Any:
            nonlocal refused
            try:
                return self._call(self._factory.open)
            except Exception as exc:
                refused = _is_auth_failure(exc)
                if refused and not self._let_in_before:
                    raise NotYet(FIRST_BOOT_401) from None
                if refused:
                    raise self._credentials_refused() from None
                if not _is_retryable(exc):
                    raise
                raise NotYet(describe(exc)) from None

        try:
            self._pool = wait_for(
                attempt, timeout=timeout, interval=5.0, what=f"{self.name}: WinRM",
                cancel=cancel, progress=waiting, note_every=0.0, sleep=self._sleep,
                hint="`nestlab console NAME` shows the guest; `nestlab up` again continues "
                     "where this one stopped.")
        except WaitTimedOut as exc:  # a transport fails with its own error
            if refused:
                raise self._credentials_refused(f" until the deadline ({timeout:.0f}s)"
                                                ) from None
            raise Unreachable(exc.message, hint=exc.hint) from None
        self._let_in_before = True

    def _credentials_refused(self, detail: str = "") -> TransportError:
        return TransportError(
            f"{self.name}: WinRM refused the lab's Administrator credentials{detail}",
            hint="The L1 may have been installed by another lab; `nestlab down` "
                 "and `up` again give it this lab's password.")

    def _session(self) -> Any:
        if self._pool is None:
            self.wait_until_reachable(60)
        return self._pool

    def reconnect(self, timeout: float) -> None:
        self._drop()
        self.wait_until_reachable(timeout)

    def _drop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            # The guest may be rebooting: a pool that cannot be closed is simply dropped.
            with contextlib.suppress(Exception):
                self._call(pool.close)

    def close(self) -> None:
        self._drop()
        self._worker.shutdown(wait=True)

    # -- using --------------------------------------------------------------------
    def _invoke(self, description: str, build: Callable[[Any], Any]) -> CommandResult:
        pool = self._session()
        try:
            output, errors, failed = self._call(lambda: self._factory.invoke(pool, build))
        except Exception as exc:
            if not _is_retryable(exc):
                raise
            self._pool = None  # the session is gone (a reboot, a network cut)
            raise TransportError(f"{self.name}: lost the WinRM session during "
                                 f"{description}: {exc}") from None
        return CommandResult(description, 1 if failed else 0,
                             "\n".join(str(o) for o in output), "\n".join(errors))

    def run(self, argv: list[str], timeout: float = 600.0) -> CommandResult:
        def build(ps: Any) -> None:
            ps.add_command(argv[0])
            for arg in argv[1:]:
                ps.add_argument(arg)

        return self._invoke(" ".join(argv), build)

    def run_script(self, name: str, script: str,
                   parameters: dict[str, Any] | None = None) -> CommandResult:
        """Run a script; ``parameters`` bind to its param() block as PowerShell values."""
        return self._invoke(name, lambda ps: ps.add_script(script).add_parameters(
            parameters or {}))

    def put(self, local: Path, remote: str) -> None:
        """pypsrp's copy (a temporary file moved into place; the folder must exist)."""
        try:
            self._call(lambda: self._factory.copy(local, remote))
        except Exception as exc:
            if not _is_retryable(exc):
                raise
            raise TransportError(f"{self.name}: cannot copy {local.name} to {remote}: "
                                 f"{describe(exc)}") from None

    def put_text(self, text: str, remote: str, mode: int = 0o644) -> None:
        result = self.run_script("write file", "param($Path, $Text) "
                                 "Set-Content -Path $Path -Value $Text -NoNewline",
                                 {"Path": remote, "Text": text})
        if not result.ok:
            raise TransportError(f"{self.name}: cannot write {remote}: {result.stderr}")
