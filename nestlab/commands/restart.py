"""``nestlab restart GUEST``: power one guest off and on again, under the lab's lock.

An L1 is destroyed and started again through libvirt on L0, then taken through
up's own steps for it: its L2s (which libvirt in the L1 does not autostart)
are started again and every one is proven, so the L1 ends as `up` leaves it.
An L2 is restarted by its L1's driver (virsh in a Linux L1, Hyper-V in a
Windows one) and proven again. Every guest keeps its SSH host key across a
restart (the prime keeps it on its own disk), so the pinned keys stay: a
guest that answers with another key after a restart is refused.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from nestlab.commands.context import LabContext
from nestlab.commands.up import bring_back_host
from nestlab.drivers import Proof, driver_for
from nestlab.errors import NestlabError
from nestlab.plan import GuestPlan, HostPlan
from nestlab.progress import Reporter
from nestlab.state.record import lab_lock
from nestlab.steps import Step, run_steps
from nestlab.virt import objects


@dataclass
class GuestResult:
    """What restart or rebuild did to one guest, and the proofs of the L2s after it."""

    guest: str
    level: str
    """``L1`` or ``L2``."""
    l1: str
    proofs: list[Proof] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    """What a rebuild removed (files on L0, or the L2's domain and disk in its L1)."""


def restart(lab_dir: Path, name: str, reporter: Reporter) -> GuestResult:
    """Restart guest ``name`` of the lab in ``lab_dir``; refused while the lab is busy."""
    ctx = LabContext.load(lab_dir)
    host, guest = ctx.find(name)
    with lab_lock(lab_dir, f"restart {name}"):
        ctx.require_sandbox_running()
        if guest is None:
            return _restart_l1(ctx, host, reporter)
        return _restart_l2(ctx, host, guest, reporter)


def _restart_l1(ctx: LabContext, host: HostPlan, reporter: Reporter) -> GuestResult:
    run_steps([Step(host.name, "restart on L0", partial(_power_cycle_l1, ctx, host))],
              reporter)
    return GuestResult(host.name, "L1", host.name, bring_back_host(ctx, host, reporter))


def _power_cycle_l1(ctx: LabContext, host: HostPlan) -> bool:
    conn = ctx.libvirt()
    try:
        dom = objects.owned_domain(conn, ctx.name, host.domain_name)
        if dom is None:
            raise NestlabError(f"{host.name} is not defined on L0",
                               hint="`nestlab up` defines and starts it.")
        objects.restart_domain(dom)
    finally:
        conn.close()
    return True


def _restart_l2(ctx: LabContext, host: HostPlan, guest: GuestPlan,
                reporter: Reporter) -> GuestResult:
    require_l1_running(ctx, host)
    driver = driver_for(ctx, host)
    session = driver.session(host)
    proofs: list[Proof] = []

    def restart_in_l1() -> bool:
        session.wait_until_reachable(60)
        driver.restart_guest(host, session, guest)
        return True

    def prove() -> bool:
        # One guest, nothing else to stop waiting for: no one sets this cancel event.
        proofs.append(driver.prove(host, session, guest, reporter.say, threading.Event()))
        return False

    try:
        run_steps([Step(guest.name, f"restart in {host.name}", restart_in_l1),
                   Step(guest.name, driver.proof_phase(host), prove)], reporter)
    finally:
        session.close()
    return GuestResult(guest.name, "L2", host.name, proofs)


def require_l1_running(ctx: LabContext, host: HostPlan) -> None:
    """An L2 is reached through its L1: refuse early, and say how, when the L1 is down."""
    conn = ctx.libvirt()
    try:
        running = objects.domain_running(conn, host.domain_name)
    finally:
        conn.close()
    if not running:
        raise NestlabError(f"{host.name} is not running, so its L2s cannot be reached",
                           hint=f"`nestlab restart {host.name}` starts it with its L2s.")

