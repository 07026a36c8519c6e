"""SSH to a guest with paramiko: the lab's key, host keys pinned under the guest's name.

How the TCP stream is made is the caller's business (a socket opened inside
the sandbox's namespace, or a channel through an L1 for an L2), so the same
class serves L1s and L2s.
"""

from __future__ import annotations

import secrets
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import paramiko

from nestlab.plural import counted
from nestlab.state.keys import HostKeyChanged, PinningPolicy
from nestlab.transport.base import CommandResult, Transport, TransportError, Unreachable
from nestlab.transport.batch import batch_script, parse_batch
from nestlab.waiting import WaitTimedOut, wait_for

Connector = Callable[[float], Any]
"""Returns a connected socket-like object (socket or paramiko Channel) within a timeout."""
Waiting = Callable[[str], None]

_RETRYABLE = (OSError, EOFError, paramiko.SSHException, paramiko.ChannelException)


class SSHTransport(Transport):
    """One SSH session with a guest, opened on demand and reused for every command."""

    def __init__(self, name: str, connector: Connector, key: paramiko.PKey,
                 known_hosts: Path, user: str = "root") -> None:
        self.name = name
        self._connector = connector
        self._key = key
        self._known_hosts = known_hosts
        self._user = user
        self._client: paramiko.SSHClient | None = None

    # -- connecting ---------------------------------------------------------------
    def _connect_once(self, timeout: float) -> paramiko.SSHClient:
        sock = self._connector(timeout)
        client = paramiko.SSHClient()
        if self._known_hosts.exists():
            client.load_host_keys(str(self._known_hosts))
        client.set_missing_host_key_policy(PinningPolicy(self._known_hosts))
        try:
            client.connect(self.name, username=self._user, pkey=self._key, sock=sock,
                           timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                           look_for_keys=False, allow_agent=False)
        except paramiko.BadHostKeyException:
            client.close()
            raise HostKeyChanged(
                f"{self.name}: its SSH host key changed; refusing to connect",
                hint=f"If the guest was rebuilt on purpose, remove its line from "
                     f"{self._known_hosts}.") from None
        except BaseException:
            client.close()
            raise
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        return client

    def wait_until_reachable(self, timeout: float, waiting: Waiting | None = None,
                             cancel: threading.Event | None = None) -> None:
        """Connect, retrying while the guest boots; a timeout names the guest and cause."""
        deadline = time.monotonic() + timeout

        def attempt() -> paramiko.SSHClient:
            try:
                return self._connect_once(min(10.0, max(deadline - time.monotonic(), 1.0)))
            except paramiko.AuthenticationException as exc:
                raise TransportError(f"{self.name}: the lab key was refused ({exc})") from None

        try:
            self._client = wait_for(
                attempt, timeout=timeout, interval=1.0, what=f"{self.name}: SSH",
                retry_on=_RETRYABLE, cancel=cancel, progress=waiting, note_every=5.0,
                hint="`nestlab console NAME` shows the guest's console; `nestlab up` again "
                     "continues where this one stopped.")
        except WaitTimedOut as exc:  # a transport fails with its own error
            raise Unreachable(exc.message, hint=exc.hint) from None

    @property
    def client(self) -> paramiko.SSHClient:
        if self._client is None or not self._is_active():
            self.wait_until_reachable(30.0)
        assert self._client is not None
        return self._client

    def _is_active(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return bool(transport and transport.is_active())

    def reconnect(self, timeout: float) -> None:
        self.close()
        self.wait_until_reachable(timeout)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- using --------------------------------------------------------------------
    def run(self, argv: list[str], timeout: float = 600.0) -> CommandResult:
        return self._exec(argv, timeout)[0]

    def run_batch(self, argvs: Sequence[list[str]], timeout: float = 600.0
                  ) -> list[CommandResult]:
        """Every command in one shell, over one channel: one round trip."""
        if not argvs:
            return []
        mark = f"nestlab-{secrets.token_hex(8)}"
        result, stdout = self._exec(["sh", "-c", batch_script(argvs, mark)], timeout,
                                    shown=f"a batch of {counted(len(argvs), 'command')}")
        if result.exit_status == 125:
            raise TransportError(f"{self.name}: a batch of commands could not start: "
                                 f"{result.stderr.strip()}")
        return parse_batch(stdout, argvs, mark, self.name)

    def _exec(self, argv: list[str], timeout: float,
              shown: str | None = None) -> tuple[CommandResult, bytes]:
        """The result, and stdout as bytes (a batch counts them); ``shown`` names the
        command in errors instead of its text."""
        command = shlex.join(argv)
        what = shown or f"`{command}`"
        try:
            channel = self.client.get_transport().open_session(timeout=30)  # type: ignore[union-attr]
            channel.settimeout(timeout)
            channel.exec_command(command)
            channel.shutdown_write()  # nothing for its stdin (`ssh -n`): a read ends at once
            stdout, stderr = _drain(channel, timeout)
            status = channel.recv_exit_status()
        except TimeoutError:
            raise TransportError(f"{self.name}: {what} did not finish in {timeout:.0f}s"
                                 ) from None
        except _RETRYABLE as exc:
            raise TransportError(f"{self.name}: lost the SSH session during {what}: {exc}"
                                 ) from None
        return CommandResult(command, status, stdout.decode(errors="replace"),
                             stderr.decode(errors="replace")), stdout

    def put(self, local: Path, remote: str) -> None:
        with self.client.open_sftp() as sftp:
            sftp.put(str(local), remote + ".part")
            sftp.posix_rename(remote + ".part", remote)

    def put_text(self, text: str, remote: str, mode: int = 0o644) -> None:
        with self.client.open_sftp() as sftp:
            with sftp.open(remote + ".part", "w") as handle:
                handle.write(text)
            sftp.chmod(remote + ".part", mode)
            sftp.posix_rename(remote + ".part", remote)

    def open_channel(self, host: str, port: int, timeout: float) -> paramiko.Channel:
        """A TCP stream from the guest to ``host:port`` (how an L2 is reached via its L1)."""
        transport = self.client.get_transport()
        assert transport is not None
        return transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0),
                                      timeout=timeout)


def _drain(channel: paramiko.Channel, timeout: float) -> tuple[bytes, bytes]:
    """Read stdout and stderr together, so neither fills its window and stalls the other."""
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    while True:
        busy = False
        if channel.recv_ready():
            out += channel.recv(65536)
            busy = True
        if channel.recv_stderr_ready():
            err += channel.recv_stderr(65536)
            busy = True
        if channel.exit_status_ready() and not channel.recv_ready() and (
            not channel.recv_stderr_ready()
        ):
            # Collect what may still be in flight after the exit status.
            while (chunk := channel.recv(65536)):
                out += chunk
            while (chunk := channel.recv_stderr(65536)):
                err += chunk
            return bytes(out), bytes(err)
        if time.monotonic() > deadline:
            raise TimeoutError
        if not busy:
            time.sleep(0.02)
