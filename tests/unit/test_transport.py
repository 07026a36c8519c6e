"""The transport registry and the shared command result."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path
from typing import cast

import paramiko
import pytest

from nestlab.errors import NestlabError
from nestlab.transport import CommandFailed, CommandResult, Unreachable, transport_class
from nestlab.transport.ssh import SSHTransport


def test_registry_imports_on_demand() -> None:
    assert transport_class("ssh") is SSHTransport
    with pytest.raises(NestlabError, match="no transport for 'telnet'"):
        transport_class("telnet")


def test_command_failed_names_guest_and_command() -> None:
    result = CommandResult("virsh start x", 1, "", "error: no such domain\n")
    assert str(CommandFailed("kvm1", result)) == (
        "kvm1: `virsh start x` exited 1:\n  error: no such domain")
    assert not result.ok


def test_ssh_that_never_answers_is_unreachable(tmp_path: Path) -> None:
    """`status` tells an L1 that does not answer yet (booting) from one that refuses."""
    def refused(_timeout: float) -> object:
        raise ConnectionRefusedError(111, "Connection refused")

    t = SSHTransport("kvm1", refused, cast(paramiko.PKey, None), tmp_path / "known_hosts")
    with pytest.raises(Unreachable, match=r"kvm1: SSH: timed out after 0s \(last: "
                                          r"ConnectionRefusedError"):
        t.wait_until_reachable(0)


class ShellServer(paramiko.ServerInterface):
    """An SSH server as sshd behaves for nestlab: the lab key, then each exec'd command in
    `sh -c`, with the channel as its stdin, stdout and stderr."""

    def __init__(self, key: paramiko.PKey) -> None:
        self.key = key

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL if key == self.key else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else \
            paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=self._run, args=(channel, command.decode()),
                         daemon=True).start()
        return True

    @staticmethod
    def _run(channel: paramiko.Channel, command: str) -> None:
        shell = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert shell.stdin and shell.stdout and shell.stderr

        def feed() -> None:  # the channel's data, then its end, to the command's stdin
            while data := channel.recv(65536):
                shell.stdin.write(data)  # type: ignore[union-attr]
            shell.stdin.close()  # type: ignore[union-attr]

        threading.Thread(target=feed, daemon=True).start()
        out, err = shell.stdout.read(), shell.stderr.read()
        channel.sendall(out)
        channel.sendall_stderr(err)
        channel.send_exit_status(shell.wait())
        channel.close()


def test_a_command_reads_an_empty_stdin_and_does_not_wait_for_one(tmp_path: Path) -> None:
    """As `ssh -n`: nestlab sends nothing to a command's stdin, and says so (EOF), so a
    command that reads it (`cat`, a prompt) ends instead of waiting until the timeout."""
    user_key, host_key = paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()
    ours, theirs = socket.socketpair()
    server = paramiko.Transport(theirs)
    server.add_server_key(host_key)
    threading.Thread(target=server.start_server, kwargs={"server": ShellServer(user_key)},
                     daemon=True).start()
    t = SSHTransport("l1", lambda _timeout: ours, user_key, tmp_path / "known_hosts")
    try:
        result = t.run(["sh", "-c", "cat; echo read all"], timeout=5)
        assert (result.exit_status, result.stdout) == (0, "read all\n")
    finally:
        t.close()
        server.close()
