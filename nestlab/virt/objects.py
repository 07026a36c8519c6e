"""libvirt networks and domains that belong to a lab.

A domain is the lab's when its <metadata> carries nestlab's element with the
lab's name. libvirt 9.0 keeps no metadata on networks, so a network is the
lab's when its name is nestlab-LAB-... and its DNS domain is NET.LAB.nestlab,
both set by nestlab's template. Nothing else is ever changed or removed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import libvirt

from nestlab.plan import METADATA_NS, NAME_PREFIX
from nestlab.render import with_uuid
from nestlab.virt.connection import LibvirtError, failure
from nestlab.waiting import NotYet, WaitTimedOut, wait_for


def _lookup_network(conn: libvirt.virConnect, name: str) -> libvirt.virNetwork | None:
    try:
        return conn.networkLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
            return None
        raise failure(conn, f"looking up network {name}", exc) from None


def _lookup_domain(conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise failure(conn, f"looking up domain {name}", exc) from None


def network_is_owned(net: libvirt.virNetwork, lab: str) -> bool:
    root = ET.fromstring(net.XMLDesc(0))  # noqa: S314 - libvirt's own XML
    dns = root.find("domain")
    return net.name().startswith(f"{NAME_PREFIX}{lab}-") and dns is not None and (
        dns.get("name", "").endswith(f".{lab}.nestlab")
    )


def domain_lab(dom: libvirt.virDomain) -> dict[str, str] | None:
    """nestlab's metadata attributes of a domain, or None when it is not nestlab's."""
    try:
        xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            return None
        raise failure(dom.connect(), f"reading the metadata of {dom.name()}", exc) from None
    return dict(ET.fromstring(xml).attrib)  # noqa: S314 - libvirt's own XML


def _not_ours(kind: str, name: str, lab: str) -> LibvirtError:
    what = "network" if kind == "network" else "host"
    return LibvirtError(f"a {kind} named {name} exists and is not lab {lab}'s; "
                        "nestlab will not touch it",
                        hint=f"Rename the lab or the {what} in the lab file.")


def refuse_foreign_names(conn: libvirt.virConnect, lab: str, networks: list[str],
                         domains: list[str]) -> None:
    """Before anything is created: every name the lab needs is free or already the lab's."""
    for name in networks:
        net = _lookup_network(conn, name)
        if net is not None and not network_is_owned(net, lab):
            raise _not_ours("network", name, lab)
    for name in domains:
        dom = _lookup_domain(conn, name)
        if dom is not None and (domain_lab(dom) or {}).get("name") != lab:
            raise _not_ours("domain", name, lab)


def ensure_network(conn: libvirt.virConnect, lab: str, name: str, xml: str) -> bool:
    """Define (persistent, autostart) and start the network; True when it had to act."""
    net = _lookup_network(conn, name)
    acted = False
    if net is None:
        try:
            net = conn.networkDefineXML(xml)
            net.setAutostart(True)
        except libvirt.libvirtError as exc:
            raise LibvirtError(f"cannot define network {name}: {exc}") from None
        acted = True
    elif not network_is_owned(net, lab):
        raise _not_ours("network", name, lab)
    if not net.isActive():
        try:
            net.create()
        except libvirt.libvirtError as exc:
            raise LibvirtError(f"cannot start network {name}: {exc}") from None
        acted = True
    return acted


def ensure_domain(conn: libvirt.virConnect, lab: str, name: str,
                  xml: str) -> tuple[libvirt.virDomain, bool]:
    """Define the domain unless it is already defined (and ours); (domain, defined now)."""
    dom = _lookup_domain(conn, name)
    if dom is None:
        try:
            return conn.defineXML(xml), True
        except libvirt.libvirtError as exc:
            raise LibvirtError(f"cannot define domain {name}: {exc}") from None
    meta = domain_lab(dom)
    if meta is None or meta.get("name") != lab:
        raise _not_ours("domain", name, lab)
    return dom, False


def redefine_domain(conn: libvirt.virConnect, lab: str, name: str,
                    xml: str) -> libvirt.virDomain:
    """Replace the lab's domain's definition and stop it, so that starting it applies it."""
    dom, _created = ensure_domain(conn, lab, name, xml)
    try:
        dom = conn.defineXML(with_uuid(xml, dom.UUIDString()))
        if dom.isActive():
            dom.destroy()
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"cannot redefine domain {name}: {exc}") from None
    return dom


def network_active(conn: libvirt.virConnect, lab: str, name: str) -> bool:
    """Whether the lab's network ``name`` is defined and running (a foreign one is not)."""
    net = _lookup_network(conn, name)
    return net is not None and network_is_owned(net, lab) and bool(net.isActive())


def owned_domain(conn: libvirt.virConnect, lab: str, name: str) -> libvirt.virDomain | None:
    """The lab's domain ``name``, None when there is none; one that is not the lab's is
    refused, never touched."""
    dom = _lookup_domain(conn, name)
    if dom is not None and (domain_lab(dom) or {}).get("name") != lab:
        raise _not_ours("domain", name, lab)
    return dom


def restart_domain(dom: libvirt.virDomain) -> None:
    """Power off (when running) and start again: a new boot of the same disk."""
    try:
        if dom.isActive():
            dom.destroy()
        dom.create()
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"cannot restart {dom.name()}: {exc}") from None


def shut_down_domain(dom: libvirt.virDomain, timeout: float, interval: float = 1.0) -> bool:
    """Ask the guest to shut down (ACPI) and wait up to ``timeout`` seconds for it to be
    off; power it off after that. True when it shut down by itself."""
    try:
        if not dom.isActive():
            return True
        if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()
        dom.shutdown()
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"cannot shut down {dom.name()}: {exc}") from None

    def off() -> bool:
        if dom.isActive():
            raise NotYet("still running")
        return True

    try:
        wait_for(off, timeout=timeout, interval=interval, what=f"{dom.name()}: shutdown")
        return True
    except WaitTimedOut:
        power_off_domain(dom)
        return False


def power_off_domain(dom: libvirt.virDomain) -> None:
    """Off at once (libvirt's destroy), when it runs: what is not on its disk is lost."""
    try:
        if dom.isActive():
            dom.destroy()
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"cannot power off {dom.name()}: {exc}") from None


def save_domain(dom: libvirt.virDomain, path: Path) -> None:
    """Its memory and device state into ``path`` (libvirt's save image, 0600: it holds
    whatever the guest had in memory); it is off after, its disks as that state has
    them. Written under a temporary name: ``path`` is whole or absent."""
    tmp = path.with_name(path.name + ".partial")
    tmp.unlink(missing_ok=True)
    try:
        dom.save(str(tmp))  # restored running, as it ran
    except libvirt.libvirtError as exc:
        tmp.unlink(missing_ok=True)
        raise LibvirtError(f"cannot save {dom.name()}'s memory: {exc}") from None
    tmp.chmod(0o600)
    tmp.replace(path)


def restore_domain(conn: libvirt.virConnect, path: Path) -> None:
    """The domain saved in ``path`` running again from that state (the file is kept)."""
    try:
        conn.restore(str(path))
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"cannot restore {path.name}: {exc}") from None


def domain_running(conn: libvirt.virConnect, name: str) -> bool:
    dom = _lookup_domain(conn, name)
    return dom is not None and dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING


def start_domain(dom: libvirt.virDomain) -> str | None:
    """Start it unless it runs, resume it when paused: says which ("started",
    "resumed"), or None when it ran already."""
    try:
        state = dom.state()[0]
        if state == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()
            return "resumed"
        if dom.isActive():
            return None
        dom.create()
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"cannot start {dom.name()}: {exc}") from None
    return "started"


def vnc_port(dom: libvirt.virDomain) -> int | None:
    """The port libvirt gave a running domain's VNC screen (None: it has none)."""
    root = ET.fromstring(dom.XMLDesc(0))  # noqa: S314 - libvirt's own XML
    graphics = root.find("devices/graphics[@type='vnc']")
    port = int(graphics.get("port", "-1")) if graphics is not None else -1
    return port if port > 0 else None


def refuses_evmcs(exc: Exception) -> bool:
    """Whether a start failed on eVMCS: some Intel hosts (no APICv, Atom-class) refuse it,
    which libvirt says as "host doesn't support hyperv 'evmcs' feature" and QEMU as
    "Hyper-V enlightened VMCS (hv-evmcs) is not supported by kernel"."""
    return "evmcs" in str(exc).lower()


def owned_domains(conn: libvirt.virConnect, lab: str) -> Iterator[tuple[libvirt.virDomain,
                                                                          dict[str, str]]]:
    try:
        domains = conn.listAllDomains(0)
    except libvirt.libvirtError as exc:
        raise failure(conn, "listing domains", exc) from None
    for dom in domains:
        meta = domain_lab(dom)
        if meta is not None and meta.get("name") == lab:
            yield dom, meta


def owned_networks(conn: libvirt.virConnect, lab: str) -> Iterator[libvirt.virNetwork]:
    try:
        networks = conn.listAllNetworks(0)
    except libvirt.libvirtError as exc:
        raise failure(conn, "listing networks", exc) from None
    for net in networks:
        if network_is_owned(net, lab):
            yield net


def lease_address(conn: libvirt.virConnect, network: str, mac: str) -> str | None:
    """The address libvirt's DHCP server leased to ``mac``, if any."""
    net = _lookup_network(conn, network)
    if net is None or not net.isActive():
        return None
    try:
        leases = net.DHCPLeases(mac)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            return None  # a driver without DHCP (libvirt's test driver)
        raise failure(conn, f"reading the DHCP leases of {network}", exc) from None
    for lease in leases:
        if lease.get("ipaddr"):
            return str(lease["ipaddr"])
    return None


def remove_domain(dom: libvirt.virDomain) -> None:
    try:
        if dom.isActive():
            dom.destroy()
        try:
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                              | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT,
                                            libvirt.VIR_ERR_INVALID_ARG):
                raise
            dom.undefine()  # drivers that know no such flags
    except libvirt.libvirtError as exc:
        raise failure(dom.connect(), f"removing domain {dom.name()}", exc) from None


def remove_network(net: libvirt.virNetwork) -> None:
    try:
        if net.isActive():
            net.destroy()
        net.undefine()
    except libvirt.libvirtError as exc:
        raise failure(net.connect(), f"removing network {net.name()}", exc) from None
