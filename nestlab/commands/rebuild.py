"""``nestlab rebuild GUEST``: one guest made again from its base image, under the lab's lock.

An L1: its domain (only the lab's own) is destroyed and undefined, its overlay,
boot files and seed or answer medium deleted (``disks.rebuild_files``), the
pinned SSH host keys of it and its L2s forgotten (they all come back new),
then up's own steps for that L1 make it again and prove its L2s.
An L2: its L1's driver removes its domain and disk inside the L1, its host key
is forgotten, and up's steps for its L1 make it again (every other step finds
its work done) and prove the L1's L2s.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from nestlab.commands.context import LabContext
from nestlab.commands.restart import GuestResult, require_l1_running
from nestlab.commands.up import bring_back_host
from nestlab.drivers import driver_for
from nestlab.plan import GuestPlan, HostPlan
from nestlab.progress import Reporter
from nestlab.state.keys import forget_host_keys
from nestlab.state.record import lab_lock
from nestlab.steps import Step, run_steps
from nestlab.virt import disks, objects


def rebuild(lab_dir: Path, name: str, reporter: Reporter) -> GuestResult:
    """Rebuild guest ``name`` of the lab in ``lab_dir``; refused while the lab is busy."""
    ctx = LabContext.load(lab_dir)
    host, guest = ctx.find(name)
    with lab_lock(lab_dir, f"rebuild {name}"):
        if guest is None:
            ctx.require_local_disks(f"rebuild of an L1 ({name})")
        ctx.require_sandbox_running()
        if guest is None:
            result = GuestResult(host.name, "L1", host.name)
            remove = partial(_remove_l1, ctx, host, result.removed)
        else:
            require_l1_running(ctx, host)
            result = GuestResult(guest.name, "L2", host.name)
            remove = partial(_remove_l2, ctx, host, guest, result.removed)
        run_steps([Step(name, "remove" if guest is None else f"remove in {host.name}",
                        remove)], reporter)
        result.proofs = bring_back_host(ctx, host, reporter)
        return result


def _remove_l1(ctx: LabContext, host: HostPlan, removed: list[str]) -> bool:
    conn = ctx.libvirt()
    try:
        dom = objects.owned_domain(conn, ctx.name, host.domain_name)  # refuses a foreign one
        if dom is not None:
            objects.remove_domain(dom)
            removed.append(f"domain {host.domain_name}")
    finally:
        conn.close()
    removed.extend(str(path) for path in disks.remove_rebuild_files(host))
    forget_host_keys(ctx.lab_dir, [host.name, *(g.name for g in host.guests)])
    return True


def _remove_l2(ctx: LabContext, host: HostPlan, guest: GuestPlan, removed: list[str]) -> bool:
    driver = driver_for(ctx, host)
    session = driver.session(host)
    try:
        session.wait_until_reachable(60)
        removed.extend(f"{item} in {host.name}"
                       for item in driver.remove_guest(host, session, guest))
    finally:
        session.close()
    forget_host_keys(ctx.lab_dir, [guest.name])
    return True
