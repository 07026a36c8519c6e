"""``nestlab status``: the lab as libvirt on L0 and each L1's hypervisor say it is now.

Asking now: L0's libvirt once (milliseconds), then every L1 that libvirt runs, all
at once, each given ``ANSWER_TIMEOUT`` seconds to answer; an L1 that does not
answer yet is ``booting`` and its L2s ``unknown``. What was seen is recorded in
the lab's folder, so ``--cached`` answers at once without asking anyone, or loading
what asking needs (``state.seen.cached_status``).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import libvirt

from nestlab import sandbox as sandboxes
from nestlab.commands.context import LabContext
from nestlab.drivers import driver_for
from nestlab.errors import NestlabError
from nestlab.plan import HostPlan
from nestlab.state.seen import (
    L1Seen,
    L2Seen,
    LabSeen,
    LabStatus,
    NetworkSeen,
    SandboxSeen,
    phase_timings,
    save_seen,
)
from nestlab.transport.base import Unreachable
from nestlab.virt import objects
from nestlab.virt.connection import LibvirtError
from nestlab.waiting import Cancelled

ANSWER_TIMEOUT = 5.0
"""How long a running L1 may take to answer before it counts as booting: room for a
booted L1's SSH or WinRM handshake on a loaded host, even under emulation, while a
status with an L1 still booting stays quick."""

_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_BLOCKED: "running",
    libvirt.VIR_DOMAIN_PAUSED: "paused", libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off", libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}
_HAS_ADDRESS = {"running", "booting", "paused", "shutting down"}
"""An L1 whose domain runs holds its reserved address (by MAC); no lease is read."""


@dataclass(frozen=True)
class L1Answer:
    """What is known of one L1: its state (libvirt's, or what it answered), its L2s'
    states by name (None: not known) and, when they are not known, why."""

    state: str
    guests: dict[str, str] | None
    note: str | None = None


def lab_status(ctx: LabContext, answer_timeout: float = ANSWER_TIMEOUT) -> LabStatus:
    """Ask now, record what was seen, and show it with the timings."""
    started = time.time()
    seen = _ask(ctx, answer_timeout, started)
    save_seen(ctx.lab_dir, seen)
    return LabStatus(seen, live=True, age=time.time() - started,
                     timings=phase_timings(ctx.lab_dir))


def seen_after_up(ctx: LabContext) -> LabSeen:
    """What a successful `up` has just made and proven: every network active, every L1
    answering at its address, every L2 running."""
    box = ctx.sandbox
    return _lab_seen(
        ctx, SandboxSeen(box.netns, True) if box else None,
        tuple(NetworkSeen(net.name, "active") for net in ctx.plan.networks),
        {h.name: L1Answer("running", {g.name: "running" for g in h.guests})
         for h in ctx.plan.hosts},
        time.time(), "up")


def _ask(ctx: LabContext, answer_timeout: float, at: float) -> LabSeen:
    box = ctx.sandbox
    if box is not None and not sandboxes.is_running(box):
        return _lab_seen(ctx, SandboxSeen(box.netns, False),
                         tuple(NetworkSeen(net.name, "unknown") for net in ctx.plan.networks),
                         {h.name: L1Answer("sandbox not running", None) for h in ctx.plan.hosts},
                         at, "status")
    try:
        networks, on_l0 = _ask_l0(ctx)
    except LibvirtError as exc:
        if ctx.record.node is None:
            raise  # the one host's libvirt: nothing else to show
        # A node that does not answer: its seat is unknown, the other nodes are asked.
        return _lab_seen(ctx, None,
                         tuple(NetworkSeen(net.name, "unknown") for net in ctx.plan.networks),
                         {h.name: L1Answer("unknown", None) for h in ctx.plan.hosts},
                         at, "status", unanswered=exc.message)
    answers = {h.name: L1Answer(on_l0[h.name], None) for h in ctx.plan.hosts}
    answers |= _ask_running_l1s(ctx, [h for h in ctx.plan.hosts if on_l0[h.name] == "running"],
                                answer_timeout)
    return _lab_seen(ctx, SandboxSeen(box.netns, True) if box else None, networks, answers,
                     at, "status")


def _ask_l0(ctx: LabContext) -> tuple[tuple[NetworkSeen, ...], dict[str, str]]:
    """The lab's networks and each L1's domain state, from one libvirt connection."""
    conn = ctx.libvirt()
    try:
        owned = {dom.name(): dom for dom, _ in objects.owned_domains(conn, ctx.name)}
        nets = {net.name(): net for net in objects.owned_networks(conn, ctx.name)}
        networks = tuple(
            NetworkSeen(net.name, "absent" if (found := nets.get(net.name)) is None
                        else ("active" if found.isActive() else "inactive"))
            for net in ctx.plan.networks)
        on_l0 = {}
        for host in ctx.plan.hosts:
            dom = owned.get(host.domain_name)
            on_l0[host.name] = "absent" if dom is None else _STATES.get(dom.state()[0],
                                                                        "unknown")
        return networks, on_l0
    finally:
        conn.close()


def _ask_running_l1s(ctx: LabContext, hosts: list[HostPlan],
                     answer_timeout: float) -> dict[str, L1Answer]:
    """Every running L1 at once: asking takes as long as the slowest, not the sum."""
    if not hosts:
        return {}
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=len(hosts), thread_name_prefix="status") as pool:
        futures = {h.name: pool.submit(_ask_l1, ctx, h, answer_timeout, cancel) for h in hosts}
        try:
            return {name: future.result() for name, future in futures.items()}
        except BaseException:
            cancel.set()  # Ctrl-C, or a bug in one: the others stop waiting
            raise


def _ask_l1(ctx: LabContext, host: HostPlan, answer_timeout: float,
            cancel: threading.Event) -> L1Answer:
    """One running L1, through its driver: does it answer, and what are its L2s."""
    driver = driver_for(ctx, host)
    session = driver.session(host)
    try:
        try:
            session.wait_until_reachable(answer_timeout, cancel=cancel)
        except Unreachable as exc:
            return L1Answer("booting", None, f"does not answer yet: {exc.message}"
                                             f"{_screen_note(driver.boot_screen(host))}")
        except Cancelled:
            raise
        except NestlabError as exc:
            return L1Answer("running", None, f"answers, but not to nestlab: {exc.message}")
        if not host.guests:
            return L1Answer("running", {})
        try:
            return L1Answer("running", driver.guest_states(host, session))
        except NestlabError as exc:
            return L1Answer("running", None, f"its L2s cannot be read: {exc.message}")
    finally:
        session.close()


def _screen_note(screen: Path | None) -> str:
    """Where the latest screenshot of a booting L1 is, and how old it is (`up` takes them
    while it waits; one taken by an `up` that ended may be old)."""
    if screen is None:
        return ""
    try:
        age = max(time.time() - screen.stat().st_mtime, 0.0)
    except OSError:
        return ""
    return f"; latest screenshot ({age:.0f}s old): {screen}"


def _lab_seen(ctx: LabContext, sandbox: SandboxSeen | None, networks: tuple[NetworkSeen, ...],
              answers: dict[str, L1Answer], at: float, by: str,
              unanswered: str | None = None) -> LabSeen:
    return LabSeen(lab=ctx.name, accel=ctx.plan.accel, uri=ctx.record.uri, sandbox=sandbox,
                   networks=networks,
                   hosts=tuple(_l1_seen(ctx, h, answers[h.name]) for h in ctx.plan.hosts),
                   at=round(at, 3), by=by, node=ctx.record.node, unanswered=unanswered)


def _l1_seen(ctx: LabContext, host: HostPlan, answer: L1Answer) -> L1Seen:
    driver = driver_for(ctx, host)
    known = answer.guests
    guests = tuple(
        L2Seen(name=g.name, domain=driver.guest_domain(g), address=str(g.ip),
               state="unknown" if known is None else known.get(g.name, "absent"))
        for g in host.guests)
    return L1Seen(name=host.name, domain=host.domain_name, os=host.os.value, state=answer.state,
                  address=str(host.nics[0].ip) if answer.state in _HAS_ADDRESS else None,
                  guests=guests, note=answer.note)
