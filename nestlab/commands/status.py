"""``nestlab status``: what libvirt (on L0 and inside each L1) says about the lab now."""

from __future__ import annotations

from typing import Any

import libvirt

from nestlab import sandbox as sandboxes
from nestlab.commands.context import LabContext
from nestlab.drivers import driver_for
from nestlab.errors import NestlabError
from nestlab.plan import HostPlan
from nestlab.state.record import last_run, read_events
from nestlab.virt import objects

_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_BLOCKED: "running",
    libvirt.VIR_DOMAIN_PAUSED: "paused", libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off", libvirt.VIR_DOMAIN_CRASHED: "crashed",
}


def lab_status(ctx: LabContext) -> dict[str, Any]:
    box = ctx.sandbox
    status: dict[str, Any] = {
        "lab": ctx.name, "accel": ctx.plan.accel, "uri": ctx.record.uri,
        "sandbox": {"netns": box.netns, "running": sandboxes.is_running(box)} if box else None,
        "networks": [], "hosts": [], "timings": _timings(ctx),
    }
    if box is not None and not sandboxes.is_running(box):
        status["hosts"] = [{"name": h.name, "state": "sandbox not running", "guests": []}
                           for h in ctx.plan.hosts]
        return status
    conn = ctx.libvirt()
    try:
        owned = {dom.name(): dom for dom, _ in objects.owned_domains(conn, ctx.name)}
        nets = {net.name(): net for net in objects.owned_networks(conn, ctx.name)}
        for net in ctx.plan.networks:
            found = nets.get(net.name)
            status["networks"].append({"name": net.name, "state": "absent" if found is None
                                       else ("active" if found.isActive() else "inactive")})
        for host in ctx.plan.hosts:
            status["hosts"].append(_host_status(ctx, conn, host, owned.get(host.domain_name)))
    finally:
        conn.close()
    return status


def _host_status(ctx: LabContext, conn: libvirt.virConnect, host: HostPlan,
                 dom: libvirt.virDomain | None) -> dict[str, Any]:
    state = "absent" if dom is None else _STATES.get(dom.state()[0], "unknown")
    nic = host.nics[0]
    entry: dict[str, Any] = {
        "name": host.name, "domain": host.domain_name, "os": host.os.value, "state": state,
        "address": objects.lease_address(conn, nic.network, nic.mac) if dom else None,
        "guests": [],
    }
    in_l1: dict[str, str] = {}
    note = None
    if state == "running" and host.guests:
        try:
            in_l1 = _guest_states(ctx, host)
        except NestlabError as exc:
            note = f"L1 not reachable: {exc.message}"
    driver = driver_for(ctx, host)
    for guest in host.guests:
        entry["guests"].append({
            "name": guest.name, "domain": driver.guest_domain(guest), "address": str(guest.ip),
            "state": in_l1.get(guest.name, "absent" if in_l1 or not note else "unknown"),
        })
    if note:
        entry["note"] = note
    return entry


def _guest_states(ctx: LabContext, host: HostPlan) -> dict[str, str]:
    """What the L1's own hypervisor says about its L2s, by L2 name."""
    driver = driver_for(ctx, host)
    session = driver.session(host)
    try:
        session.wait_until_reachable(20)
        return driver.guest_states(host, session)
    finally:
        session.close()


def _timings(ctx: LabContext) -> list[dict[str, Any]]:
    return [
        {"guest": e["guest"], "phase": e["phase"], "seconds": e["seconds"],
         "outcome": e["outcome"]}
        for e in last_run(read_events(ctx.lab_dir), "up")
    ]
