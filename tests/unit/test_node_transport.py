"""Reaching a node: the SSH end of its URI, the key libvirt's ssh would use, and which
labs need their files copied to their node."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nestlab.errors import NestlabError
from nestlab.transport.node import NodeAddress, node_address, node_key, node_session
from nestlab.virt.nodefiles import needs_copies


def test_the_ssh_end_of_a_uri() -> None:
    assert node_address("qemu+ssh://admin@node7.example:2222/system?keyfile=/k/id") == \
        NodeAddress("admin", "node7.example", 2222, Path("/k/id"))
    plain = node_address("qemu+ssh://node1/system")
    assert plain == NodeAddress("root", "node1", 22, None)
    assert plain.name == "node1"
    assert NodeAddress("root", "10.1.0.2", 2222, None).name == "[10.1.0.2]:2222"
    for local in ("qemu:///system", "test:///default", "qemu+unix:///system?socket=/s",
                  "qemu+tcp://node1/system"):
        assert node_address(local) is None
        assert node_session(local) is None


def test_the_key_is_the_uris_keyfile_or_the_users_own(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "id_node"
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()))
    assert node_key(NodeAddress("root", "n", 22, key)).get_name() == "ssh-ed25519"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(NestlabError) as caught:
        node_key(NodeAddress("root", "n", 22, None))
    assert caught.value.message == (
        f"no SSH key for node n (looked for {tmp_path}/home/.ssh/id_ed25519, "
        f"{tmp_path}/home/.ssh/id_ecdsa, {tmp_path}/home/.ssh/id_rsa)")
    (tmp_path / "bad").write_text("not a key")
    with pytest.raises(NestlabError) as caught:
        node_key(NodeAddress("root", "n", 22, tmp_path / "bad"))
    assert caught.value.message.startswith(f"cannot read the SSH key {tmp_path}/bad for node n")


def test_only_a_lab_on_another_machines_node_gets_copies() -> None:
    assert needs_copies("qemu+ssh://root@node1/system", "node1")
    assert not needs_copies("qemu+ssh://root@node1/system", None)  # not placed: --connect
    assert not needs_copies("qemu:///system", "here")  # a node that is this host
    assert not needs_copies("test:///node-a", "node-a")


def test_a_node_that_is_down_is_said_to_be_at_once(tmp_path: Path) -> None:
    """libvirt's ssh would wait for the system's TCP timeout; the node's SSH port is
    tried first, within NODE_TIMEOUT (here: a loopback port nothing listens on)."""
    import time

    from nestlab.commands.context import LabContext
    from nestlab.plan import Plan
    from nestlab.state.record import LabRecord
    from nestlab.virt.connection import LibvirtError

    record = LabRecord("course-s01", "", "qemu+ssh://root@127.0.0.1:1/system", False, None,
                       node="node1")
    ctx = LabContext(tmp_path, record, Plan("course-s01", "tcg", tmp_path, (), ()))
    started = time.monotonic()
    with pytest.raises(LibvirtError) as caught:
        ctx.libvirt()
    assert time.monotonic() - started < 5
    assert caught.value.message == ("node node1 does not answer (no connection to 127.0.0.1 "
                                    "port 1 within 10s: Connection refused)")
