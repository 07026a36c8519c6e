"""The lab's key pair and host-key pinning."""

from __future__ import annotations

import io
import stat
import threading
from pathlib import Path

import paramiko
import pytest

from nestlab.build.answerfile import l1_password
from nestlab.files import FileProblem
from nestlab.state.keys import (
    HostKeyChanged,
    PinningPolicy,
    ensure_lab_key,
    forget_host_keys,
    known_hosts_path,
    load_private_key,
    new_host_key,
    private_key_path,
    repin_host_keys,
    vnc_password,
    vnc_password_path,
)
from nestlab.virt.objects import vnc_port


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
    other = paramiko.ECDSAKey.generate()
    policy.missing_host_key(paramiko.SSHClient(), "prime1", other)  # another guest: pinned
    pinned = paramiko.HostKeys(str(known_hosts_path(tmp_path)))
    assert pinned.lookup("prime1")[other.get_name()] == other  # type: ignore[index]
    assert pinned.lookup("kvm1")[first.get_name()] == first  # type: ignore[index]


def test_a_private_key_without_its_public_half_is_repaired(tmp_path: Path) -> None:
    public = ensure_lab_key(tmp_path)
    private_key_path(tmp_path).with_suffix(".pub").unlink()
    assert ensure_lab_key(tmp_path) == public
    private_key_path(tmp_path).with_suffix(".pub").write_text("")
    assert ensure_lab_key(tmp_path) == public
    assert private_key_path(tmp_path).with_suffix(".pub").read_text() == public + "\n"


def test_an_empty_private_key_left_by_a_crash_is_replaced(tmp_path: Path) -> None:
    private_key_path(tmp_path).parent.mkdir(parents=True)
    private_key_path(tmp_path).write_bytes(b"")
    public = ensure_lab_key(tmp_path)
    assert public.split()[1] == load_private_key(tmp_path).get_base64()


def test_a_damaged_private_key_is_refused_not_replaced(tmp_path: Path) -> None:
    private_key_path(tmp_path).parent.mkdir(parents=True)
    private_key_path(tmp_path).write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage")
    with pytest.raises(FileProblem, match="the lab's private key cannot be read"):
        ensure_lab_key(tmp_path)
    assert private_key_path(tmp_path).read_bytes().endswith(b"garbage")


def test_an_empty_password_file_is_regenerated(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "hv1.password").write_text("")
    password = l1_password(tmp_path, "hv1")
    assert len(password) == 24
    assert l1_password(tmp_path, "hv1") == password
    assert stat.S_IMODE((tmp_path / "keys" / "hv1.password").stat().st_mode) == 0o600


def test_forgetting_host_keys_drops_only_those_guests(tmp_path: Path) -> None:
    ensure_lab_key(tmp_path)
    known = known_hosts_path(tmp_path)
    known.write_text("# pinned by nestlab\nkvm1 ssh-ed25519 AAAA1\nprime1,prime1b ssh-rsa AAAA2\n"
                     "prime10 ssh-ed25519 AAAA3\n")
    assert forget_host_keys(tmp_path, ["prime1", "kvm9"]) == ["prime1"]
    assert known.read_text() == ("# pinned by nestlab\nkvm1 ssh-ed25519 AAAA1\n"
                                 "prime10 ssh-ed25519 AAAA3\n")
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    assert forget_host_keys(tmp_path, ["prime1"]) == []
    known.unlink()
    assert forget_host_keys(tmp_path, ["kvm1"]) == []


def test_an_l1s_vnc_password_is_made_once_kept_0600_and_remade_when_damaged(
        tmp_path: Path) -> None:
    first = vnc_password(tmp_path, "hv1")
    assert len(first) == 8 and first.isalnum()
    assert vnc_password(tmp_path, "hv1") == first
    assert vnc_password(tmp_path, "hv2") != first
    path = vnc_password_path(tmp_path, "hv1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("")  # a damaged file: a new password, never an empty one
    again = vnc_password(tmp_path, "hv1")
    assert len(again) == 8 and again.isalnum()


def test_the_vnc_port_is_read_from_the_running_domains_xml() -> None:
    class Domain:
        def __init__(self, graphics: str) -> None:
            self.graphics = graphics

        def XMLDesc(self, _flags: int) -> str:
            return f"<domain><devices>{self.graphics}</devices></domain>"

    assert vnc_port(Domain("<graphics type='vnc' port='5901' autoport='yes'/>")) == 5901
    assert vnc_port(Domain("<graphics type='vnc' port='-1' autoport='yes'/>")) is None
    assert vnc_port(Domain("<graphics type='spice' port='5930'/>")) is None


def test_keys_pinned_at_the_same_time_are_all_kept(tmp_path: Path) -> None:
    """L1s are reached in parallel, and so are a lab's nodes: each pin is a read, an
    addition and a write of one known_hosts, which must not lose the others'."""
    path = known_hosts_path(tmp_path)
    path.parent.mkdir()
    names = [f"kvm{n}" for n in range(16)]
    keys = {name: paramiko.Ed25519Key.from_private_key(io.StringIO(new_host_key(name)[0]))
            for name in names}
    start = threading.Barrier(len(names))

    def pin(name: str) -> None:
        start.wait()
        if name.endswith(("0", "5")):
            repin_host_keys(tmp_path, [name], f"{name} {keys[name].get_name()} "
                                              f"{keys[name].get_base64()}\n")
        else:
            PinningPolicy(path).missing_host_key(paramiko.SSHClient(), name, keys[name])

    threads = [threading.Thread(target=pin, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pinned = paramiko.HostKeys(str(path))
    assert sorted(pinned.keys()) == sorted(names)
