"""The lab's SSH identity and the guests' pinned host keys.

A key pair is generated per lab at the first ``up`` and kept 0600 in the lab's
folder; it is never put on a command line or in a log. Guest host keys are
pinned on first contact in the lab's own known_hosts, under the guest's name:
a changed key later is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nestlab.errors import NestlabError


class HostKeyChanged(NestlabError):
    """A guest presented a host key other than the one pinned for it."""


def key_dir(lab_dir: Path) -> Path:
    return lab_dir / "keys"


def private_key_path(lab_dir: Path) -> Path:
    return key_dir(lab_dir) / "id_ed25519"


def known_hosts_path(lab_dir: Path) -> Path:
    return key_dir(lab_dir) / "known_hosts"


def ensure_lab_key(lab_dir: Path) -> str:
    """Create the lab's key pair if missing; return the public key line."""
    folder = key_dir(lab_dir)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    private = private_key_path(lab_dir)
    public = private.with_suffix(".pub")
    if not private.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH)
        public.write_text(line.decode() + f" nestlab-{lab_dir.name}\n")
    return public.read_text().strip()


def load_private_key(lab_dir: Path) -> paramiko.PKey:
    return paramiko.Ed25519Key.from_private_key_file(str(private_key_path(lab_dir)))


class PinningPolicy(paramiko.MissingHostKeyPolicy):
    """Accept a guest's key the first time (and record it), refuse any change after."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        keys = paramiko.HostKeys()
        if self.path.exists():
            keys.load(str(self.path))
        pinned = keys.lookup(hostname)
        if pinned is not None and pinned.get(key.get_name()) == key:
            client.get_host_keys().add(hostname, key.get_name(), key)
            return
        if pinned is not None:
            raise HostKeyChanged(
                f"{hostname}: its SSH host key changed; refusing to connect",
                hint=f"If the guest was rebuilt on purpose, remove its line from {self.path}.",
            )
        keys.add(hostname, key.get_name(), key)
        keys.save(str(self.path))
        self.path.chmod(0o600)
        client.get_host_keys().add(hostname, key.get_name(), key)
