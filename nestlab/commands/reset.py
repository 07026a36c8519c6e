"""The lab's baseline, and ``nestlab reset`` back to it, under the lab's lock.

A baseline is what `up --baseline` keeps once `up` has proven every L2: per
L1, its L2s are shut down cleanly inside it (the driver's ``stop_guests``:
`virsh shutdown`, or Hyper-V's `Stop-VM`, then powered off after a bounded
wait), the L1 is shut down (ACPI, then powered off after a bounded wait), and
its disk is frozen into ``baseline.qcow2`` under a new empty top
(nestlab/virt/layers.py). Then up's own steps start every L1 again, start its
L2s (nestlab's L2s do not autostart: up's `define + start` step starts them,
as after any reboot of an L1) and prove them.

`reset` powers each L1 off (its top layer is thrown away, so nothing on it needs
to be saved), puts a new empty top on its baseline, pins the SSH host keys its
guests had when the baseline was kept (an L2 rebuilt since had another), and
ends the same way: the
L1 boots the baseline's state, its L2s are started (they were shut down cleanly
in it) and proven. Nothing is provisioned again: every other step of `up` finds
its work done. A reset cut short is finished by `reset` again, or by `up`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from nestlab.commands.context import LabContext
from nestlab.commands.up import bring_back_hosts
from nestlab.drivers import Proof, driver_for
from nestlab.drivers.base import Say
from nestlab.errors import InputError, NestlabError
from nestlab.files import KiB, read_bounded_text, write_atomic
from nestlab.plan import HostPlan
from nestlab.progress import Reporter
from nestlab.state.keys import pinned_host_keys, repin_host_keys
from nestlab.state.record import lab_lock
from nestlab.steps import Step, run_steps
from nestlab.virt import layers, objects

L2_SHUTDOWN = 120.0
"""Seconds an L1's L2s get to shut down by themselves before they are powered off."""
L1_SHUTDOWN = 300.0
"""Seconds an L1 gets to shut down (ACPI) before it is powered off; an emulated L1 is
slow to."""


class NoBaseline(InputError):
    """`reset` of a lab (or an L1) that has no baseline yet: exit 2."""


@dataclass
class LayerResult:
    """What reset, baseline or a snapshot command did, and the proofs after it."""

    lab: str
    action: str
    snapshot: str | None = None
    hosts: list[str] = field(default_factory=list)
    """The L1s it acted on."""
    proofs: list[Proof] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def make_baseline(lab_dir: Path, reporter: Reporter) -> LayerResult:
    """Keep every L1 that has no baseline yet as it is now (run after `up` proved it)."""
    ctx = LabContext.load(lab_dir)
    result = LayerResult(ctx.name, "baseline")
    with lab_lock(lab_dir, "up --baseline"):
        ctx.require_local_disks("a baseline")
        ctx.require_sandbox_running()
        for host in ctx.plan.hosts:
            layers.finish_interrupted(host)
        hosts = [h for h in ctx.plan.hosts if not layers.has_baseline(h)]
        if not hosts:
            return result
        run_steps([Step(h.name, "baseline", partial(
            freeze_l1, ctx, h, layers.baseline_path(h), reporter.say, result.notes))
            for h in hosts], reporter)
        result.hosts = [h.name for h in hosts]
        result.proofs = bring_back_hosts(ctx, reporter)
    return result


def reset(lab_dir: Path, reporter: Reporter) -> LayerResult:
    """Every L1 (and so its L2s) back to the lab's baseline, started and proven."""
    ctx = LabContext.load(lab_dir)
    with lab_lock(lab_dir, "reset"):
        ctx.require_local_disks("reset")
        ctx.require_sandbox_running()
        for host in ctx.plan.hosts:
            layers.finish_interrupted(host)
        missing = [h.name for h in ctx.plan.hosts if not layers.baseline_path(h).exists()]
        if missing:
            raise NoBaseline(f"lab {ctx.name} has no baseline for {', '.join(missing)}, so "
                             "there is nothing to reset to",
                             hint=f"`nestlab up --baseline -f {ctx.record.lab_file}` keeps the "
                                  "lab as `up` proved it; reset returns to that.")
        run_steps([Step(h.name, "back to the baseline",
                        partial(put_top_on, ctx, h, layers.baseline_path(h)))
                   for h in ctx.plan.hosts], reporter)
        return LayerResult(ctx.name, "reset", hosts=[h.name for h in ctx.plan.hosts],
                           proofs=bring_back_hosts(ctx, reporter))


def freeze_l1(ctx: LabContext, host: HostPlan, layer: Path, say: Say,
              notes: list[str]) -> bool:
    """Shut the L1's L2s and then the L1 down cleanly and freeze its disk into ``layer``
    (left off: up's steps start it again)."""
    conn = ctx.libvirt()
    try:
        dom = objects.owned_domain(conn, ctx.name, host.domain_name)
        if dom is not None and dom.isActive():
            if host.guests:
                _stop_l2s(ctx, host, say, notes)
            say(host.name, "shutting down")
            if not objects.shut_down_domain(dom, L1_SHUTDOWN):
                notes.append(f"{host.name} did not shut down within {L1_SHUTDOWN:.0f}s: "
                             "powered off (its L2s were already off)")
    finally:
        conn.close()
    layers.freeze_top(host, layer)
    write_atomic(layers.pins_path(layer), pinned_host_keys(ctx.lab_dir, _names(host)))
    return True


def _names(host: HostPlan) -> list[str]:
    return [host.name, *(g.name for g in host.guests)]


def _stop_l2s(ctx: LabContext, host: HostPlan, say: Say, notes: list[str]) -> None:
    driver = driver_for(ctx, host)
    session = driver.session(host)
    try:
        session.wait_until_reachable(driver.timeouts().boot)
        say(host.name, "shutting its L2s down")
        forced = driver.stop_guests(host, session, L2_SHUTDOWN)
    finally:
        session.close()
    if forced:
        notes.append(f"{', '.join(forced)} did not shut down within {L2_SHUTDOWN:.0f}s: "
                     f"powered off in {host.name}")


def put_top_on(ctx: LabContext, host: HostPlan, layer: Path) -> bool:
    """Power the L1 off and give it a new empty top on ``layer``: what it wrote since is
    gone (up's steps start it again)."""
    if not layer.exists():
        raise NestlabError(f"{host.name}: {layer} is missing")
    conn = ctx.libvirt()
    try:
        dom = objects.owned_domain(conn, ctx.name, host.domain_name)
        if dom is not None:
            objects.power_off_domain(dom)
    finally:
        conn.close()
    layers.new_top(host, layer)
    pins = layers.pins_path(layer)
    if pins.exists():  # the layer's guests are back with their keys of then
        repin_host_keys(ctx.lab_dir, _names(host),
                        read_bounded_text(pins, 1024 * KiB, "pinned host keys"))
    return True
