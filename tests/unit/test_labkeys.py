"""The lab's key pair and host-key pinning."""

from __future__ import annotations

import stat
from pathlib import Path

import paramiko
import pytest

from nestlab.labkeys import (
    HostKeyChanged,
    PinningPolicy,
    ensure_lab_key,
    known_hosts_path,
    load_private_key,
    private_key_path,
)


def test_key_pair_is_private_and_stable(tmp_path: Path) -> None:
    public = ensure_lab_key(tmp_path)
    assert public.startswith("ssh-ed25519 ")
    assert stat.S_IMODE(private_key_path(tmp_path).stat().st_mode) == 0o600
    assert stat.S_IMODE(private_key_path(tmp_path).parent.stat().st_mode) == 0o700
    assert ensure_lab_key(tmp_path) == public
    key = load_private_key(tmp_path)
    assert public.split()[1] == key.get_base64()


def test_first_key_is_pinned_and_a_changed_one_refused(tmp_path: Path) -> None:
    ensure_lab_key(tmp_path)
    policy = PinningPolicy(known_hosts_path(tmp_path))
    client = paramiko.SSHClient()
    first = paramiko.ECDSAKey.generate()
    policy.missing_host_key(client, "kvm1", first)
    assert stat.S_IMODE(known_hosts_path(tmp_path).stat().st_mode) == 0o600
    policy.missing_host_key(paramiko.SSHClient(), "kvm1", first)  # same key: accepted
    with pytest.raises(HostKeyChanged, match="kvm1: its SSH host key changed"):
        policy.missing_host_key(paramiko.SSHClient(), "kvm1", paramiko.ECDSAKey.generate())
    policy.missing_host_key(paramiko.SSHClient(), "prime1", paramiko.ECDSAKey.generate())
