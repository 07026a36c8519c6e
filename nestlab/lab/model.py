"""The lab as typed, frozen objects: what ``labfile`` hands to every later stage.

Field-level rules live here (names, sizes, enums); rules that relate several
fields (overlapping CIDRs, memory that must fit) live in ``labfile``, which can
point at the exact key.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)

from nestlab.errors import brief_repr
from nestlab.lab import MAX_SEATS
from nestlab.lab.systems import OS

GiB = 1024**3
MiB = 1024**2

_byte_size = TypeAdapter(ByteSize)


def _parse_size(value: Any) -> int:
    """Accept ``8GiB``, ``512MiB``, ``1.5 GiB``, ``20GB``; refuse bare numbers.

    A bare number is refused quoted too (``"8589934592"``): bytes or MiB is
    exactly the guess the unit is there to avoid.
    """
    expected = f"expected a size with a unit, like 4GiB or 512MiB, got {brief_repr(value)}"
    if isinstance(value, bool) or not isinstance(value, str) or not _HAS_UNIT.search(value):
        raise ValueError(expected)
    try:
        return int(_byte_size.validate_python(value))
    except ValueError:
        raise ValueError(expected) from None


_HAS_UNIT = re.compile(r"[A-Za-z]\s*$")


def _at_least(minimum: int, what: str) -> AfterValidator:
    def check(value: int) -> int:
        if value < minimum:
            raise ValueError(f"{what} must be at least {format_size(minimum)}")
        return value

    return AfterValidator(check)


def format_size(size: int) -> str:
    """Render a byte count the way a lab file would write it."""
    for unit, factor in (("TiB", 1024**4), ("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    if size >= GiB:
        return f"{size / GiB:.1f}GiB"
    return f"{size}B"


def human_size(size: int) -> str:
    """An approximate size for messages: 23.2GiB, 512MiB."""
    if size >= GiB:
        return f"{size / GiB:.1f}GiB"
    return f"{size / MiB:.0f}MiB"


Size = Annotated[int, BeforeValidator(_parse_size)]
MemorySize = Annotated[Size, _at_least(128 * MiB, "memory")]
DiskSize = Annotated[Size, _at_least(64 * MiB, "a disk")]

# A DNS label that is also safe in libvirt names, bridge names and file names.
Name = Annotated[
    str,
    Field(
        pattern=r"^[a-z]([a-z0-9-]*[a-z0-9])?$",
        min_length=1,
        max_length=20,
        description="lower-case letters, digits and '-', starting with a letter",
    ),
]


def _ipv4_network(value: Any) -> ipaddress.IPv4Network:
    expected = f"expected an IPv4 CIDR like 10.80.0.0/24, got {brief_repr(value)}"
    if not isinstance(value, str) or len(value) > len("255.255.255.255/32"):
        raise ValueError(expected)
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"expected an IPv4 CIDR like 10.80.0.0/24: {exc}") from None
    if not 16 <= net.prefixlen <= 28:
        raise ValueError(f"prefix length must be between /16 and /28, got /{net.prefixlen}")
    for special, what in NOT_FOR_A_LAB.items():
        if net.overlaps(special):
            raise ValueError(
                f"{net} is {what}, not a range a lab network can use; take one from a "
                "private range: 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
            )
    return net


# Ranges whose addresses are not ordinary unicast (RFC 6890): libvirt would
# happily give a bridge 127.0.0.1 or 255.255.0.1, and the host's own traffic
# would go astray. Private-use and other unicast ranges are accepted.
NOT_FOR_A_LAB = {
    ipaddress.IPv4Network("0.0.0.0/8"): "in 'this network' (0.0.0.0/8)",
    ipaddress.IPv4Network("127.0.0.0/8"): "loopback (127.0.0.0/8)",
    ipaddress.IPv4Network("169.254.0.0/16"): "link-local (169.254.0.0/16)",
    ipaddress.IPv4Network("224.0.0.0/4"): "multicast (224.0.0.0/4)",
    ipaddress.IPv4Network("240.0.0.0/4"): (
        "reserved (240.0.0.0/4, where netmasks like 255.255.0.0 and the broadcast "
        "address fall)"
    ),
}


Cidr = Annotated[ipaddress.IPv4Network, BeforeValidator(_ipv4_network)]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Accel(StrEnum):
    """How L1 guests are run: chosen by the host check, or forced by the lab."""

    auto = "auto"
    kvm = "kvm"
    tcg = "tcg"


class NetworkMode(StrEnum):
    nat = "nat"
    isolated = "isolated"


class GuestNetworkMode(StrEnum):
    """The L2 network inside an L1: nat (the L2s reach out through their L1), internal
    (they reach only each other and their L1), routed (not NATed: the L2s of every routed
    L1 of the lab reach each other, through routes nestlab gives the L1s), bridged (a
    Windows L1's L2s on the L1's own network)."""

    nat = "nat"
    routed = "routed"
    internal = "internal"
    bridged = "bridged"


# More networks, L1s, L2s per L1 or NICs per L1 than one L0 host can run; the bound
# also keeps checks that compare every pair of items fast on any file.
MAX_ITEMS = 64


class Network(Frozen):
    """An L1 network on the L0 host (a libvirt network)."""

    name: Name
    mode: NetworkMode = NetworkMode.nat
    cidr: Cidr


GUEST_CIDR_BASE = ipaddress.IPv4Network("192.168.100.0/24")
"""The default L2 subnets: the first L1's, the next L1 gets the next /24, and so on, so
that L2s of different L1s never share an address."""


class GuestNetwork(Frozen):
    """The network an L1 gives its L2 guests."""

    mode: GuestNetworkMode = GuestNetworkMode.nat
    cidr: Cidr | None = Field(
        default=None, description="default: 192.168.100.0/24 for the first L1, "
                                  "192.168.101.0/24 for the second, and so on")


class Guest(Frozen):
    """An L2 guest ("guest prime") that runs inside an L1."""

    name: Name
    # strict: YAML's `cpus: yes` or `cpus: "4"` is a typo to point at, not 1 or 4 vCPUs.
    cpus: int = Field(default=1, ge=1, le=64, strict=True)
    memory: MemorySize = 256 * MiB
    disk: DiskSize = 1 * GiB
    image: Name = "prime"


class Host(Frozen):
    """An L1 lab host: a hypervisor that runs its own L2 guests."""

    name: Name
    os: OS
    cpus: int | None = Field(
        default=None, ge=1, le=64, strict=True, description="default: 2 under kvm, 1 under tcg"
    )
    memory: MemorySize = 3 * GiB
    disk: DiskSize = 10 * GiB
    image: Name | None = Field(default=None, description="default: the OS's base image")
    networks: tuple[Name, ...] = Field(max_length=MAX_ITEMS)
    guest_network: GuestNetwork = GuestNetwork()
    guests: tuple[Guest, ...] = Field(default=(), max_length=MAX_ITEMS)

    @property
    def base_image(self) -> str:
        return self.image or self.os.profile.default_image



MAX_NODES = 32
"""More libvirt hosts than one classroom's labs are spread over."""
_NODE_SCHEMES = re.compile(r"(qemu|test)(\+(ssh|libssh|libssh2))?")
"""Over SSH, or this host: nestlab reaches a node's guests and reads its facts through the
SSH its URI names (qemu+tcp or +tls would give neither)."""


def _node_uri(value: Any) -> str:
    """A libvirt URI of a host nestlab may place seats on: ``qemu+ssh://root@node1/system``,
    ``qemu:///system`` (this host), ``test:///default`` (libvirt's test driver)."""
    expected = ("expected a libvirt URI over SSH like qemu+ssh://root@node1/system (or "
                f"qemu:///system for this host), got {brief_repr(value)}")
    if not isinstance(value, str) or len(value) > 512 or not value.isprintable() or \
            any(c.isspace() for c in value):
        raise ValueError(expected)
    scheme, sep, rest = value.partition("://")
    if not sep or not _NODE_SCHEMES.fullmatch(scheme):
        raise ValueError(expected)
    authority = rest.split("/", 1)[0]
    if scheme.endswith(("+ssh", "+libssh", "+libssh2")) and \
            not authority.rpartition("@")[2]:
        raise ValueError(f"{value!r} names no host: a remote URI is "
                         f"{scheme}://USER@HOST[:PORT]/system")
    try:
        port = urlsplit(value).port  # raises for a port that is not a number up to 65535
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"{value!r}: the port after the host must be a number from 1 to "
                         "65535")
    return value


NodeUri = Annotated[str, BeforeValidator(_node_uri)]


def _got(value: Any) -> str:
    """A value as a message shows it; YAML's empty value (``weight:``) is nothing."""
    return "nothing" if value is None else brief_repr(value)


def _whole_number(low: int, high: int, empty_ok: bool = False) -> BeforeValidator:
    """A whole number from ``low`` to ``high``, or None where ``empty_ok``. YAML's ``yes``,
    ``1.5`` or ``"3"`` is a typo to point at, not a number to guess."""
    def check(value: Any) -> Any:
        if value is None and empty_ok:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, got {_got(value)}")
        return value

    return BeforeValidator(check)


_NODE_EXAMPLE = "name: node1, uri: qemu+ssh://root@node1/system"


def _node_list(value: Any) -> Any:
    """``nodes:`` is a list of mappings; a URI, a mapping or nothing in its place is one
    message with what was expected, not pydantic's "valid tuple"."""
    if not isinstance(value, list | tuple):
        raise ValueError("expected a list of nodes, each with name: and uri: (like "
                         "`- name: node1` and `uri: qemu+ssh://root@node1/system` under it), "
                         f"got {_got(value)}")
    if len(value) > MAX_NODES:
        raise ValueError(f"at most {MAX_NODES} nodes, got {len(value)}")
    return value


class Node(Frozen):
    """A libvirt host the lab's seats may be placed on, reached by its URI."""

    name: Name
    uri: NodeUri
    weight: Annotated[int, _whole_number(1, 100)] = Field(
        default=1, ge=1, le=100, description="a node of weight 2 is given seats as if it had "
                                             "twice its free memory")
    max_seats: Annotated[int | None, _whole_number(1, MAX_SEATS, empty_ok=True)] = Field(
        default=None, ge=1, le=MAX_SEATS, description="at most this many of the lab's seats")

    @model_validator(mode="before")
    @classmethod
    def _a_mapping(cls, data: Any) -> Any:
        """A bare URI in the list (``nodes: [qemu+ssh://...]``) names what a node needs."""
        if not isinstance(data, dict | Node):
            raise ValueError(f"expected a node with name: and uri:, like {{{_NODE_EXAMPLE}}}, "
                             f"got {_got(data)}")
        return data


class Lab(Frozen):
    """A whole lab: the networks on L0, the L1 hosts and their L2 guests."""

    lab: Name = Field(description="the lab's name; every libvirt object it creates carries it")
    accel: Accel = Accel.auto
    networks: tuple[Network, ...] = Field(max_length=MAX_ITEMS)
    hosts: tuple[Host, ...] = Field(max_length=MAX_ITEMS)
    seats: int | None = Field(
        default=None, ge=1, le=MAX_SEATS, strict=True,
        description="copies of the lab, one per student: seat k is the lab <lab>-sNN "
                    "(course-s01...), each L0 network moved up by k-1 blocks of its own "
                    "size (seat 1 keeps the lab file's CIDRs)")
    nodes: Annotated[tuple[Node, ...], BeforeValidator(_node_list)] = Field(
        default=(), max_length=MAX_NODES,
        description="libvirt hosts the seats (or the lab) may be placed on, each seat on "
                    "one node as a whole; default: the host at --connect")

    @property
    def name(self) -> str:
        return self.lab

    def guest_cidr(self, index: int) -> ipaddress.IPv4Network:
        """The L2 subnet of the L1 at ``index``: its own, or the default one for its place."""
        chosen = self.hosts[index].guest_network.cidr
        if chosen is not None:
            return chosen
        return ipaddress.IPv4Network((int(GUEST_CIDR_BASE.network_address) + 256 * index, 24))

    def network(self, name: str) -> Network:
        return next(n for n in self.networks if n.name == name)
