"""The lab's baseline, and ``nestlab reset`` back to it, under the lab's lock.

A baseline is what `up --baseline` keeps once `up` has proven every L2, per L1:

- its memory: its L2s are paused inside it (the driver's ``pause_guests``:
  `virsh suspend`, or Hyper-V's `Suspend-VM`), then libvirt saves the L1
  (``baseline.state``, libvirt's save image; the L1 is off after it);
- its disk at that same moment, frozen into ``baseline.qcow2`` under a new empty
  top (nestlab/virt/layers.py);

and then the L1 is restored from that memory: it runs on where it was, its clock
set to now and its L2s resumed (``resume_guests``). Up's own steps follow and
find everything done and proven.

`reset` powers each L1 off (its top layer is thrown away, so nothing on it needs
to be saved), puts a new empty top on its baseline, pins the SSH host keys its
guests had when the baseline was kept (an L2 rebuilt since had another), and
restores the baseline's memory: no boot of the L1 or of its L2s, nothing
provisioned again. A reset cut short is finished by `reset` again, or by `up`.

Where libvirt cannot save an L1 (a device QEMU cannot migrate), the baseline
is its disk alone: its L2s are shut down cleanly (`virsh shutdown` or
`Stop-VM`, powered off after a bounded wait), the L1 shut down (ACPI, then
powered off), its disk frozen; up's steps then boot it and start its L2s, and
so does every reset. Where a memory cannot be restored (QEMU changed since),
the disk kept with it boots instead, as after a power loss, and the note says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import libvirt

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
from nestlab.virt.connection import LibvirtError

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
        keep_and_wake(ctx, hosts, layers.baseline_path, "baseline", reporter, result.notes)
        result.hosts = [h.name for h in hosts]
        result.proofs = bring_back_hosts(ctx, reporter)
    return result


def reset(lab_dir: Path, reporter: Reporter) -> LayerResult:
    """Every L1 (and so its L2s) back to the lab's baseline, started and proven."""
    ctx = LabContext.load(lab_dir)
    result = LayerResult(ctx.name, "reset", hosts=[h.name for h in ctx.plan.hosts])
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
        go_back_and_wake(ctx, ctx.plan.hosts, layers.baseline_path, "back to the baseline",
                         reporter, result.notes)
        result.proofs = bring_back_hosts(ctx, reporter)
    return result


LayerOf = Callable[[HostPlan], Path]
"""Which layer of an L1 (its baseline, or its layer of one snapshot)."""


def keep_and_wake(ctx: LabContext, hosts: Sequence[HostPlan], layer_of: LayerOf, phase: str,
                  reporter: Reporter, notes: list[str]) -> None:
    """Freeze every L1 into its layer, then (all kept first: one moment of the lab) wake
    each from the memory it was kept with."""
    run_steps([Step(h.name, phase, partial(freeze_l1, ctx, h, layer_of(h), reporter.say,
                                           notes)) for h in hosts], reporter)
    _wake_all(ctx, hosts, layer_of, reporter, notes)


def go_back_and_wake(ctx: LabContext, hosts: Sequence[HostPlan], layer_of: LayerOf, phase: str,
                     reporter: Reporter, notes: list[str]) -> None:
    """Every L1 onto a new empty top on its layer, then woken from the layer's memory."""
    run_steps([Step(h.name, phase, partial(put_top_on, ctx, h, layer_of(h)))
               for h in hosts], reporter)
    _wake_all(ctx, hosts, layer_of, reporter, notes)


def _wake_all(ctx: LabContext, hosts: Sequence[HostPlan], layer_of: LayerOf, reporter: Reporter,
              notes: list[str]) -> None:
    run_steps([Step(h.name, "memory restored", partial(
        wake_l1, ctx, h, layer_of(h), reporter.say, notes))
        for h in hosts if layers.state_path(layer_of(h)).exists()], reporter)


def freeze_l1(ctx: LabContext, host: HostPlan, layer: Path, say: Say,
              notes: list[str]) -> bool:
    """Keep the L1 in ``layer`` (left off). A running L1 is kept with its memory: its L2s
    paused inside it, the L1 saved (``layers.state_path``), so that `wake_l1` continues
    it where it was; one that cannot be saved is shut down cleanly (its L2s first) and
    only its disk is kept."""
    state = layers.state_path(layer)
    if not layer.exists():
        state.unlink(missing_ok=True)  # a state counts only with the layer frozen after it
        layers.make_layer_folder(host, layer)
    conn = ctx.libvirt()
    try:
        dom = objects.owned_domain(conn, ctx.name, host.domain_name)
        if (dom is not None and dom.isActive()
                and not _save_l1(ctx, host, dom, state, say, notes)):
            _shut_down_l1(ctx, host, dom, say, notes)
    finally:
        conn.close()
    layers.freeze_top(host, layer)
    write_atomic(layers.pins_path(layer), pinned_host_keys(ctx.lab_dir, _names(host)))
    return True


def _save_l1(ctx: LabContext, host: HostPlan, dom: libvirt.virDomain, state: Path, say: Say,
             notes: list[str]) -> bool:
    """The L1's L2s paused and the L1 saved into ``state`` (off after). False when libvirt
    cannot save it (its L2s are resumed)."""
    driver = driver_for(ctx, host)
    session = driver.session(host)
    try:
        if host.guests:
            session.wait_until_reachable(driver.timeouts().boot)
            say(host.name, "pausing its L2s")
            driver.pause_guests(host, session)
        say(host.name, "saving its memory")
        try:
            objects.save_domain(dom, state)
        except LibvirtError as exc:
            notes.append(f"{host.name}: {exc.message}: shut down instead, its memory not kept")
            if host.guests:
                driver.resume_guests(host, session)
            return False
    finally:
        session.close()
    return True


def _shut_down_l1(ctx: LabContext, host: HostPlan, dom: libvirt.virDomain, say: Say,
                  notes: list[str]) -> None:
    if host.guests:
        _stop_l2s(ctx, host, say, notes)
    say(host.name, "shutting down")
    if not objects.shut_down_domain(dom, L1_SHUTDOWN):
        notes.append(f"{host.name} did not shut down within {L1_SHUTDOWN:.0f}s: "
                     "powered off (its L2s were already off)")


def wake_l1(ctx: LabContext, host: HostPlan, layer: Path, say: Say, notes: list[str]) -> bool:
    """The L1 running again from the memory kept with ``layer`` (on a top on it): its
    clock set, its L2s resumed. Where libvirt cannot restore it, it is left off and up's
    steps boot its disk as kept (as after a power loss)."""
    conn = ctx.libvirt()
    try:
        try:
            objects.restore_domain(conn, layers.state_path(layer))
        except LibvirtError as exc:
            notes.append(f"{host.name}: {exc.message}: booted from its disk instead")
            return False
    finally:
        conn.close()
    driver = driver_for(ctx, host)
    session = driver.session(host)
    try:
        session.wait_until_reachable(driver.timeouts().boot)
        resumed = driver.resume_guests(host, session)
    finally:
        session.close()
    if resumed:
        say(host.name, f"resumed {', '.join(resumed)}")
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
