"""The transport registry and the shared command result."""

from __future__ import annotations

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
