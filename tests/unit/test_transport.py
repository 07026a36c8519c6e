"""The transport registry and the shared command result."""

from __future__ import annotations

import pytest

from nestlab.errors import NestlabError
from nestlab.transport import CommandFailed, CommandResult, transport_class
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
