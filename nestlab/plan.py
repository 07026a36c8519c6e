"""Turn a lab and the host's verdict into everything that must exist: the Plan.

Names, MAC and IP addresses, file paths and CPU presets are all decided here,
deterministically, so ``render`` and later ``up`` only follow the plan.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter

from nestlab.build.images import L1_GUEST_DIR
from nestlab.host.check import HostDecision
from nestlab.lab.model import GuestNetworkMode, Host, Lab, NetworkMode
from nestlab.lab.systems import OS, Family

NAME_PREFIX = "nestlab-"
METADATA_NS = "https://nestlab.dev/xmlns/lab/1"
_FIRST_HOST_OFFSET = 10  # .1 is the gateway; hosts and guests are numbered from .10


@dataclass(frozen=True)
class Nic:
    network: str
    """libvirt network name."""
    mac: str
    ip: ipaddress.IPv4Address


@dataclass(frozen=True)
class NetworkPlan:
    name: str
    """libvirt network name: nestlab-<lab>-<network>."""
    lab_network: str
    mode: Literal["nat", "isolated"]
    bridge: str
    gateway: ipaddress.IPv4Address
    netmask: ipaddress.IPv4Address
    dhcp_range: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address] | None
    reservations: tuple[tuple[str, str, ipaddress.IPv4Address], ...]
    """(mac, host name, ip) of every L1 on this network."""


@dataclass(frozen=True)
class CpuPlan:
    mode: Literal["host-passthrough", "custom"]
    model: str | None
    require: tuple[str, ...]
    disable: tuple[str, ...] = ()


@dataclass(frozen=True)
class GuestPlan:
    """An L2 guest, with paths as seen inside its L1."""

    name: str
    domain_name: str
    cpus: int
    memory: int
    disk: int
    image: str
    mac: str
    ip: ipaddress.IPv4Address
    disk_path: str
    kernel: str
    initrd: str
    console_log: str


@dataclass(frozen=True)
class GuestNetworkPlan:
    mode: GuestNetworkMode
    name: str
    bridge: str
    cidr: ipaddress.IPv4Network | None
    """None for a bridged network: its addresses are the outside network's."""
    gateway: ipaddress.IPv4Address | None
    netmask: ipaddress.IPv4Address | None
    reservations: tuple[tuple[str, str, ipaddress.IPv4Address], ...]
    routes: tuple[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address], ...] = ()
    """For a routed network: (the L2 subnet of another routed L1, that L1's address on an
    L0 network both share), routes the L1 gets so that its L2s reach the other's."""


@dataclass(frozen=True)
class HostPlan:
    """An L1 host, with paths on L0."""

    name: str
    domain_name: str
    os: OS
    family: Family
    """Which L1 driver (``nestlab.drivers``) and templates serve it."""
    domain_type: Literal["kvm", "qemu"]
    cpus: int
    memory: int
    disk: int
    base_image: str
    disk_path: Path
    kernel: Path
    initrd: Path
    seed_path: Path
    console_log: Path
    cpu: CpuPlan
    nics: tuple[Nic, ...]
    evmcs: bool
    guest_network: GuestNetworkPlan
    guests: tuple[GuestPlan, ...]


@dataclass(frozen=True)
class Plan:
    lab: str
    accel: Literal["kvm", "tcg"]
    lab_dir: Path
    networks: tuple[NetworkPlan, ...]
    hosts: tuple[HostPlan, ...]
    public_key: str | None = None
    """The lab's SSH public key, once generated (the first `up`); L2s get it at boot."""

    def host(self, name: str) -> HostPlan:
        return next(h for h in self.hosts if h.name == name)


def make_plan(lab: Lab, decision: HostDecision, lab_dir: Path,
              public_key: str | None = None) -> Plan:
    """Decide every name, address, path and preset, from the lab and the host's decision."""
    networks = tuple(_plan_network(lab, net.name) for net in lab.networks)
    hosts = tuple(
        _plan_host(lab, index, decision, lab_dir, networks) for index in range(len(lab.hosts))
    )
    return Plan(lab=lab.name, accel=decision.accel, lab_dir=lab_dir, networks=networks,
                hosts=hosts, public_key=public_key)


_PLAN = TypeAdapter(Plan)


def plan_to_json(plan: Plan) -> Any:
    """The plan as JSON values (what ``plan.json`` holds and ``plan_changes`` compares)."""
    return _PLAN.dump_python(plan, mode="json")


def plan_from_json(value: Any) -> Plan:
    return _PLAN.validate_python(value)


def plan_changes(old: Plan, new: Plan) -> list[str]:
    """What differs between two plans, one line per value: ``hosts[0].memory: a -> b``."""
    before, after = _flatten(plan_to_json(old)), _flatten(plan_to_json(new))
    changes = []
    for key in sorted(before.keys() | after.keys()):
        if key == "public_key":
            continue  # the key is the lab's, not the lab file's
        if before.get(key, "(none)") != after.get(key, "(none)"):
            changes.append(f"{key}: {before.get(key, '(none)')} -> {after.get(key, '(none)')}")
    return changes


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out |= _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out |= _flatten(item, f"{prefix}[{index}]")
        return out
    return {prefix: value}


def domain_name(lab: str, host: str) -> str:
    return f"{NAME_PREFIX}{lab}-{host}"


def network_name(lab: str, network: str) -> str:
    return f"{NAME_PREFIX}{lab}-{network}"


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("/".join(parts).encode()).digest()


def mac_address(*parts: str) -> str:
    """A stable, locally administered MAC in QEMU's 52:54:00 range."""
    tail = _digest("mac", *parts)[:3]
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


def bridge_name(*parts: str) -> str:
    """Linux caps interface names at 15 characters; 'nl' + 10 hex digits fits."""
    return "nl" + _digest("bridge", *parts).hex()[:10]


def _nth(network: ipaddress.IPv4Network, index: int) -> ipaddress.IPv4Address:
    return network.network_address + index


def _plan_network(lab: Lab, name: str) -> NetworkPlan:
    net = lab.network(name)
    attached = [h for h in lab.hosts if name in h.networks]
    reservations = tuple(
        (mac_address(lab.name, h.name, name), h.name, _nth(net.cidr, _FIRST_HOST_OFFSET + i))
        for i, h in enumerate(attached)
    )
    first_free = _FIRST_HOST_OFFSET + len(attached)
    last = net.cidr.num_addresses - 2
    return NetworkPlan(
        name=network_name(lab.name, name),
        lab_network=name,
        mode="nat" if net.mode is NetworkMode.nat else "isolated",
        bridge=bridge_name(lab.name, name),
        gateway=_nth(net.cidr, 1),
        netmask=net.cidr.netmask,
        dhcp_range=(_nth(net.cidr, first_free), _nth(net.cidr, last)) if first_free <= last
        else None,
        reservations=reservations,
    )


def _cpu_plan(host: Host, accel: str, vendor: str) -> CpuPlan:
    if accel == "tcg":
        # TCG emulates AMD SVM; EPYC is a model QEMU 7.2's TCG can run (it warns about a
        # few features it lacks, harmlessly). See reference/nested-ci-recipe.md.
        return CpuPlan(mode="custom", model="EPYC", require=("svm",))
    if vendor == "intel":
        # TSX off is needed for Hyper-V in the VM (cilium/ebpf setup.sh, hyperv-in-kvm.md).
        disable = ("hle", "rtm") if host.os.profile.runs_hyperv else ()
        return CpuPlan(mode="host-passthrough", model=None, require=("vmx",), disable=disable)
    return CpuPlan(mode="host-passthrough", model=None, require=("svm",))


def _plan_host(
    lab: Lab,
    index: int,
    decision: HostDecision,
    lab_dir: Path,
    networks: tuple[NetworkPlan, ...],
) -> HostPlan:
    host, accel = lab.hosts[index], decision.accel
    nics = []
    for net_name in host.networks:
        plan = next(n for n in networks if n.lab_network == net_name)
        mac, _, ip = next(r for r in plan.reservations if r[1] == host.name)
        nics.append(Nic(network=plan.name, mac=mac, ip=ip))
    host_dir = lab_dir / "hosts" / host.name
    # Under tcg more than one vCPU sometimes hangs L1 at its first KVM use (recipe, pitfall 5).
    cpus = host.cpus or (2 if accel == "kvm" else 1)
    guests = _plan_guests(lab, index)
    return HostPlan(
        name=host.name,
        domain_name=domain_name(lab.name, host.name),
        os=host.os,
        family=host.os.profile.family,
        domain_type="kvm" if accel == "kvm" else "qemu",
        cpus=cpus,
        memory=host.memory,
        disk=host.disk,
        base_image=host.base_image,
        disk_path=host_dir / "disk.qcow2",
        kernel=host_dir / "vmlinuz",
        initrd=host_dir / "initrd.img",
        seed_path=host_dir / "seed.iso",
        console_log=host_dir / "console.log",
        cpu=_cpu_plan(host, accel, decision.vendor),
        nics=tuple(nics),
        evmcs=host.os.profile.runs_hyperv and decision.evmcs,
        guest_network=_plan_guest_network(lab, index, guests, networks),
        guests=guests,
    )


def _plan_guest_network(lab: Lab, index: int, guests: tuple[GuestPlan, ...],
                        networks: tuple[NetworkPlan, ...]) -> GuestNetworkPlan:
    gnet = lab.hosts[index].guest_network
    cidr = lab.guest_cidr(index)
    reservations = tuple((g.mac, g.name, g.ip) for g in guests)
    bridged = gnet.mode is GuestNetworkMode.bridged
    return GuestNetworkPlan(
        mode=gnet.mode,
        name=f"nestlab-{gnet.mode.value}",
        bridge="nlvirbr0",
        cidr=None if bridged else cidr,
        gateway=None if bridged else _nth(cidr, 1),
        netmask=None if bridged else cidr.netmask,
        reservations=() if bridged else reservations,
        routes=_routes(lab, index, networks) if gnet.mode is GuestNetworkMode.routed else (),
    )


def _routes(lab: Lab, index: int, networks: tuple[NetworkPlan, ...]
            ) -> tuple[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address], ...]:
    """To every other routed L1's L2 subnet, through that L1's address on the first L0
    network the two share (the lab file's checks make sure there is one)."""
    here = lab.hosts[index]
    routes = []
    for other_index, other in enumerate(lab.hosts):
        if other_index == index or other.guest_network.mode is not GuestNetworkMode.routed:
            continue
        shared = next((n for n in here.networks if n in other.networks), None)
        if shared is None:
            continue
        plan = next(n for n in networks if n.lab_network == shared)
        via = next(ip for _mac, name, ip in plan.reservations if name == other.name)
        routes.append((lab.guest_cidr(other_index), via))
    return tuple(routes)


def _plan_guests(lab: Lab, index: int) -> tuple[GuestPlan, ...]:
    host, cidr = lab.hosts[index], lab.guest_cidr(index)
    guests = []
    for i, guest in enumerate(host.guests):
        base = f"{L1_GUEST_DIR}/guests/{guest.name}"
        guests.append(
            GuestPlan(
                name=guest.name,
                domain_name=domain_name(lab.name, guest.name),
                cpus=guest.cpus,
                memory=guest.memory,
                disk=guest.disk,
                image=guest.image,
                mac=mac_address(lab.name, host.name, guest.name),
                ip=_nth(cidr, _FIRST_HOST_OFFSET + i),
                disk_path=f"{base}/disk.qcow2",
                kernel=f"{L1_GUEST_DIR}/images/{guest.image}/vmlinuz",
                initrd=f"{L1_GUEST_DIR}/images/{guest.image}/initrd.img",
                console_log=f"{base}/console.log",
            )
        )
    return tuple(guests)
