"""SSH to a node: the user, host and port of its ``qemu+ssh://`` URI, the node's host key
pinned on first contact (``known_nodes_path``) and refused when it changes, as guests'
keys are, and a ``direct-tcpip`` channel through it to a guest on the node (a jump
host, as ``ssh -J`` is).

The key is the one libvirt's own ssh uses for that URI: its ``keyfile=`` parameter, or
else the user's ``~/.ssh/id_ed25519``, ``id_ecdsa`` or ``id_rsa``. It is read, never
copied, never put on a command line.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import paramiko

from nestlab.errors import NestlabError
from nestlab.files import private_dir
from nestlab.sandbox import open_socket
from nestlab.state.paths import data_root
from nestlab.transport.ssh import SSHTransport
from nestlab.virt.connection import LibvirtError

DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")


@dataclass(frozen=True)
class NodeAddress:
    """Where a remote libvirt URI's SSH goes."""

    user: str
    host: str
    port: int
    keyfile: Path | None

    @property
    def name(self) -> str:
        """How its host key is pinned (OpenSSH's form for a port other than 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def node_address(uri: str) -> NodeAddress | None:
    """The SSH end of a ``qemu+ssh://`` URI; None for a URI libvirt reaches without SSH
    (``qemu:///system``, ``test:///...``): its guests are reached from here."""
    parts = urlsplit(uri)
    if not parts.scheme.endswith(("+ssh", "+libssh", "+libssh2")) or not parts.hostname:
        return None
    keyfile = parse_qs(parts.query).get("keyfile", [None])[0]
    return NodeAddress(parts.username or "root", parts.hostname, parts.port or 22,
                       Path(keyfile) if keyfile else None)


NODE_TIMEOUT = 10.0
"""How long a node's SSH port may take to accept a connection: libvirt's ssh would wait
for the system's TCP timeout (minutes) on a node that is down."""


def reach_node(uri: str, timeout: float) -> None:
    """Whether the SSH port of a ``qemu+ssh://`` node accepts a connection within
    ``timeout`` (a URI reached without SSH: nothing to try). ``LibvirtError`` when not."""
    address = node_address(uri)
    if address is None:
        return
    try:
        socket.create_connection((address.host, address.port), timeout=timeout).close()
    except OSError as exc:
        raise LibvirtError(f"no connection to {address.host} port {address.port} within "
                           f"{timeout:.0f}s: {exc.strerror or exc}") from None


def node_key(address: NodeAddress) -> paramiko.PKey:
    """The private key libvirt's ssh would use for this node."""
    candidates = [address.keyfile] if address.keyfile else [
        Path.home() / ".ssh" / name for name in DEFAULT_KEYS]
    for path in candidates:
        if path is not None and path.is_file():
            try:
                return paramiko.PKey.from_path(path)
            except (paramiko.SSHException, OSError, ValueError) as exc:
                raise NestlabError(f"cannot read the SSH key {path} for node "
                                   f"{address.name}: {exc}",
                                   hint="nestlab reads keys without a passphrase; "
                                        "give the URI ?keyfile=PATH of one.") from None
    shown = ", ".join(str(p) for p in candidates if p is not None)
    raise NestlabError(f"no SSH key for node {address.name} (looked for {shown})",
                       hint="Make one (`ssh-keygen -t ed25519`) and put its public half in "
                            f"{address.user}@{address.host}'s authorized_keys, or give the "
                            "URI ?keyfile=PATH.")


def node_session(uri: str, root: Path | None = None) -> SSHTransport | None:
    """A (not yet connected) SSH session with the node of ``uri``; None for a URI reached
    without SSH. The node's host key is pinned on first contact, a changed one refused."""
    address = node_address(uri)
    if address is None:
        return None
    return SSHTransport(address.name,
                        lambda timeout: socket.create_connection(
                            (address.host, address.port), timeout=timeout),
                        node_key(address), known_nodes_path(root), user=address.user)


def known_nodes_path(root: Path | None = None) -> Path:
    """The nodes' pinned host keys, one file for every lab (a node outlives the labs on
    it; `down` forgets guests' keys, never a node's), in a 0700 folder."""
    return private_dir((root or data_root()) / "nodes") / "known_hosts"


_NODES: dict[str, SSHTransport] = {}
_NODES_LOCK = threading.Lock()


def open_stream(uri: str, netns: str | None, host: str, port: int,
                timeout: float) -> socket.socket | paramiko.Channel:
    """A TCP stream to a guest's ``host:port``, from where the lab's libvirt runs its
    guests: through the node for a lab on a ``qemu+ssh://`` node (one SSH session per
    node, shared by every guest there), else from this host (inside ``netns``, a
    sandbox's, when given)."""
    if node_address(uri) is None:
        return open_socket(netns, host, port, timeout)
    with _NODES_LOCK:
        node = _NODES.get(uri) or node_session(uri)
        assert node is not None  # node_address found its SSH end
        _NODES[uri] = node
        node.client  # noqa: B018 - connects, or connects again after the node dropped it
    return node.open_channel(host, port, timeout)
