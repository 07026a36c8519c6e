"""The lab's SSH identity and the guests' pinned host keys.

A key pair is generated per lab at the first ``up`` and kept 0600 in the lab's
folder; it is never put on a command line or in a log. Guest host keys are
pinned in the lab's own known_hosts, under the guest's name: a Linux L1's before
it first boots (nestlab makes its host key and hands it over on the seed medium),
an L2's on first contact. A changed key later is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import string
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nestlab.errors import NestlabError
from nestlab.files import (
    FileProblem,
    KiB,
    kept_secret,
    private_dir,
    read_bounded_bytes,
    read_bounded_text,
    write_atomic,
)


class HostKeyChanged(NestlabError):
    """A guest presented a host key other than the one pinned for it."""


def key_dir(lab_dir: Path) -> Path:
    return lab_dir / "keys"


def private_key_path(lab_dir: Path) -> Path:
    return key_dir(lab_dir) / "id_ed25519"


def public_key_path(lab_dir: Path) -> Path:
    return private_key_path(lab_dir).with_suffix(".pub")


def existing_public_key(lab_dir: Path) -> str | None:
    """The lab's public key line if its first `up` has made it (read only: `render` and
    `plan` show what `up` would use). A folder this user cannot enter counts as none."""
    public = public_key_path(lab_dir)
    # os.path.exists: False (not an error) for a folder this user cannot enter.
    if not os.path.exists(public):
        return None
    return read_bounded_text(public, 16 * 1024, "public key").strip()


VNC_PASSWORD_LENGTH = 8  # VNC's own authentication uses the first 8 characters only


def vnc_password_path(lab_dir: Path, host: str) -> Path:
    return key_dir(lab_dir) / f"{host}.vnc"


def vnc_password(lab_dir: Path, host: str) -> str:
    """The password of one L1's VNC screen (made once, kept 0600 with the lab's keys).

    VNC authentication is weak (8 characters, DES): it keeps other users of this host
    out of a console where Windows was logged on; the screen listens on 127.0.0.1 only.
    """
    alphabet = string.ascii_letters + string.digits
    return kept_secret(
        vnc_password_path(lab_dir, host),
        lambda: "".join(secrets.choice(alphabet) for _ in range(VNC_PASSWORD_LENGTH)),
        lambda kept: len(kept) == VNC_PASSWORD_LENGTH and kept.isalnum(), "VNC password")


def known_hosts_path(lab_dir: Path) -> Path:
    return key_dir(lab_dir) / "known_hosts"


def ensure_lab_key(lab_dir: Path) -> str:
    """Create the lab's key pair if missing; return the public key line.

    The private key is written atomically, so a crash leaves either no key or a
    whole one; the public half is derived from it whenever it is missing or
    does not match (a crash between the two writes).
    """
    private_dir(key_dir(lab_dir))
    private = private_key_path(lab_dir)
    key = _read_private_key(private)
    if key is None:
        key = Ed25519PrivateKey.generate()
        write_atomic(private, _openssh(key)[0])
    line = _openssh(key)[1] + f" nestlab-{lab_dir.name}"
    public = public_key_path(lab_dir)
    if not public.exists() or public.read_text().strip() != line:
        write_atomic(public, line + "\n", mode=0o644)
    return line


def new_host_key(name: str) -> tuple[str, str]:
    """An SSH host key made here for guest ``name``: (the private key, OpenSSH format; its
    known_hosts line). Made on L0 it costs nothing, where an emulated L1 took 12 s for
    ssh-keygen's RSA key alone, and its public half is known before the guest answers."""
    private, public = _openssh(Ed25519PrivateKey.generate())
    return private.decode(), f"{name} {public}\n"


def _openssh(key: Ed25519PrivateKey) -> tuple[bytes, str]:
    """The private key as ssh-keygen writes it, and the public key's ``TYPE BASE64``."""
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                              serialization.NoEncryption()),
            key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                          serialization.PublicFormat.OpenSSH).decode())


def _read_private_key(path: Path) -> Ed25519PrivateKey | None:
    """The lab's private key; None when there is none yet (or an empty file a crash left
    before anything could have used it). A damaged key is refused, not replaced: guests
    may trust it."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    data = read_bounded_bytes(path, 16 * 1024, "private key")
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except ValueError as exc:
        raise FileProblem(f"{path}: the lab's private key cannot be read ({exc})",
                          hint="Take the lab down with --purge to start it afresh.") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise FileProblem(f"{path}: not an ed25519 key")
    return key


def load_private_key(lab_dir: Path) -> paramiko.PKey:
    return paramiko.Ed25519Key.from_private_key_file(str(private_key_path(lab_dir)))


_PINNING = threading.Lock()


@contextlib.contextmanager
def _pinning(path: Path) -> Iterator[None]:
    """One writer of a known_hosts at a time, each reading what the one before wrote: the
    threads of this process (L1s, their seeds and a lab's nodes are reached in parallel)
    and other nestlab processes (the nodes' known_hosts serves every lab); the lock is
    the file's folder."""
    with _PINNING:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            yield
        finally:
            os.close(folder)


class PinningPolicy(paramiko.MissingHostKeyPolicy):
    """Accept a guest's key the first time (and record it), refuse any change after."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        with _pinning(self.path):
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
                    hint=f"If the guest was rebuilt on purpose, remove its line from "
                         f"{self.path}.",
                )
            keys.add(hostname, key.get_name(), key)
            keys.save(str(self.path))
            self.path.chmod(0o600)
        client.get_host_keys().add(hostname, key.get_name(), key)


def forget_host_keys(lab_dir: Path, names: Iterable[str]) -> list[str]:
    """Unpin the host keys of guests that come back with new ones: a rebuilt guest, and
    an L2 booted again (the prime makes its keys at each boot, in memory). Returns the
    names that had one."""
    path = known_hosts_path(lab_dir)
    if not path.exists():
        return []
    with _pinning(path):
        return _forget(path, set(names))


def _forget(path: Path, wanted: set[str]) -> list[str]:
    if not path.exists():
        return []
    kept, forgotten = [], set()
    for line in read_bounded_text(path, 1024 * KiB, "known_hosts").splitlines(keepends=True):
        fields = line.split(maxsplit=1)
        hosts = set(fields[0].split(",")) if fields and not fields[0].startswith("#") else set()
        if hosts & wanted:
            forgotten |= hosts & wanted
        else:
            kept.append(line)
    if forgotten:
        write_atomic(path, "".join(kept))
    return sorted(forgotten)


def pinned_host_keys(lab_dir: Path, names: Iterable[str]) -> str:
    """The known_hosts lines of these guests (kept with a disk layer: the keys its guests
    have)."""
    path = known_hosts_path(lab_dir)
    if not path.exists():
        return ""
    wanted = set(names)
    return "".join(line for line in read_bounded_text(path, 1024 * KiB, "known_hosts")
                   .splitlines(keepends=True)
                   if (fields := line.split(maxsplit=1)) and not fields[0].startswith("#")
                   and set(fields[0].split(",")) & wanted)


def repin_host_keys(lab_dir: Path, names: Iterable[str], pinned: str) -> None:
    """Pin these guests' keys as ``pinned`` says (a disk layer's guests are back, with the
    keys they had then: an L2 rebuilt since had another)."""
    path = known_hosts_path(lab_dir)
    with _pinning(path):
        _forget(path, set(names))
        kept = read_bounded_text(path, 1024 * KiB, "known_hosts") if path.exists() else ""
        if kept and not kept.endswith("\n"):
            kept += "\n"
        write_atomic(path, kept + pinned)
