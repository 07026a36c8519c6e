"""What a node reports, read over its libvirt connection and the SSH its URI names.

Memory, CPUs and what libvirt offers (domain types, KVM capabilities) come over
libvirt (``getInfo``, ``getMemoryStats``, capabilities); the CPU flags and kvm
module facts (nested, SLAT, /dev/kvm) over SSH, as ``host.facts`` reads them on
this host. Deciding stays in ``host.check`` and ``host.placement``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import libvirt

from nestlab.errors import NestlabError
from nestlab.host.facts import (
    HostFacts,
    KvmFacts,
    KvmModule,
    ResourceFacts,
    parse_cpuinfo,
    parse_meminfo,
    read_libvirt,
)
from nestlab.host.placement import NodeRoom
from nestlab.lab.model import Node
from nestlab.transport.base import Transport
from nestlab.transport.node import NODE_TIMEOUT, node_session, reach_node
from nestlab.virt.connection import LibvirtError

# One command, no value pasted in: prints what read_kvm reads, as KEY=VALUE lines.
_KVM_SCRIPT = r"""
for m in kvm_intel kvm_amd; do [ -d /sys/module/$m ] && echo module=$m && break; done
for p in nested ept npt; do for m in kvm_intel kvm_amd; do
  f=/sys/module/$m/parameters/$p; [ -r $f ] && echo $p=$(cat $f); done; done
[ -e /dev/kvm ] && echo device_present=1
if (exec 3<>/dev/kvm) 2>/dev/null; then echo device_openable=1; fi
c=/boot/config-$(uname -r); grep -q '^CONFIG_KVM_HYPERV=y' $c 2>/dev/null && echo hyperv=y
grep -q '^# CONFIG_KVM_HYPERV is not set' $c 2>/dev/null && echo hyperv=n
echo kernel=$(uname -r)
"""
_MODULES: dict[str, KvmModule] = {"kvm_intel": "kvm_intel", "kvm_amd": "kvm_amd"}
_BUILT_IN: dict[str, Literal["y", "n"]] = {"y": "y", "n": "n"}
_DF_SCRIPT = 'p=$1; while [ ! -e "$p" ]; do p=$(dirname "$p"); done; df -P -B1 "$p" | tail -1'


def read_room(node: Node, seated: int) -> NodeRoom:
    """How much room ``node`` has: memory free for guests and CPUs not taken by running
    domains' vCPUs; a node that cannot be asked is a fact (``answers`` False)."""
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        conn = libvirt.openReadOnly(node.uri)
    except libvirt.libvirtError as exc:
        return NodeRoom(node.name, 0, 0, node.weight, node.max_seats, seated, answers=False,
                        error=str(exc))
    try:
        cpus = conn.getInfo()[2]
        taken = sum(dom.info()[3] for dom in conn.listAllDomains(
            libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))
        return NodeRoom(node.name, _free_memory(conn), max(cpus - taken, 0), node.weight,
                        node.max_seats, seated)
    except libvirt.libvirtError as exc:
        return NodeRoom(node.name, 0, 0, node.weight, node.max_seats, seated, answers=False,
                        error=str(exc))
    finally:
        conn.close()


def _free_memory(conn: libvirt.virConnect) -> int:
    """Free, buffers and page cache (what the kernel gives a guest); free alone where the
    driver reports no more (libvirt's test driver)."""
    try:
        stats = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
            raise
        return int(conn.getFreeMemory())
    return sum(int(stats.get(k, 0)) for k in ("free", "buffers", "cached")) * 1024


def read_facts_over_ssh(uri: str, data_root: Path) -> HostFacts:
    """The facts of the node at ``uri`` (a ``qemu+ssh://`` URI), over libvirt and SSH
    (``NestlabError`` when the node cannot be asked). Its SSH port is tried once first:
    a node that refuses the connection is down, not booting, and says so at once."""
    try:
        reach_node(uri, NODE_TIMEOUT)
    except LibvirtError as exc:
        raise NestlabError(f"node {uri} does not answer ({exc.message})",
                           hint=f"Is sshd running on it? `virsh -c {uri} uri` asks it over "
                                "SSH.") from None
    session = node_session(uri, data_root)
    if session is None:
        raise NestlabError(f"{uri} is not reached over SSH; its facts are this host's")
    try:
        session.wait_until_reachable(20.0)
        return read_node_facts(uri, session, data_root)
    finally:
        session.close()


def read_node_facts(uri: str, ssh: Transport, data_root: Path) -> HostFacts:
    """A node's facts: libvirt's over ``uri``, the kernel's over ``ssh``."""
    lib = read_libvirt(uri)
    if not lib.reachable:
        raise NestlabError(f"node {uri}: libvirt does not answer ({lib.error})",
                           hint="Is libvirtd running there? `systemctl status libvirtd` on "
                                "the node.")
    cpu = parse_cpuinfo(ssh.check(["cat", "/proc/cpuinfo"]).stdout)
    kvm = dict(line.split("=", 1) for line in ssh.check(["sh", "-c", _KVM_SCRIPT]).stdout
               .splitlines() if "=" in line)
    memory = parse_meminfo(ssh.check(["cat", "/proc/meminfo"]).stdout)
    df = ssh.check(["sh", "-c", _DF_SCRIPT, "sh", str(data_root)]).stdout.split()
    module = kvm.get("module")
    return HostFacts(
        kernel=kvm.get("kernel", "unknown"),
        cpu=cpu,
        kvm=KvmFacts(
            device_present="device_present" in kvm, device_openable="device_openable" in kvm,
            module=_MODULES.get(module or ""),
            nested=kvm.get("nested"),
            slat=kvm.get("ept" if module == "kvm_intel" else "npt"),
            hyperv_emulation=_BUILT_IN.get(kvm.get("hyperv", "")),
        ),
        libvirt=lib.model_copy(update={"daemon_installed": True}),  # it answered
        qemu_binary=_emulator(uri),
        ovmf_files=lib.kvm_caps.firmware if lib.kvm_caps else (),
        resources=ResourceFacts(mem_total=memory.get("MemTotal", 0),
                                mem_available=memory.get("MemAvailable",
                                                         memory.get("MemFree", 0)),
                                disk_path=str(data_root),
                                disk_free=int(df[3]) if len(df) > 3 and df[3].isdigit() else 0),
        programs=None,  # nestlab runs nothing on a node but what libvirt runs
    )


def _emulator(uri: str) -> str | None:
    """The x86_64 QEMU libvirt names in the node's capabilities."""
    import xml.etree.ElementTree as ET

    conn = libvirt.openReadOnly(uri)
    try:
        root = ET.fromstring(conn.getCapabilities())  # noqa: S314 - libvirt's own XML
    finally:
        conn.close()
    for guest in root.findall("guest"):
        arch = guest.find("arch[@name='x86_64']")
        if arch is not None and arch.findtext("emulator"):
            return arch.findtext("emulator")
    return None
