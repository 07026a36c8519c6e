"""``nestlab snapshot save|restore|list|delete NAME``: named states of a whole lab (every
L1 with its L2s), under the lab's lock.

Why layers of L1s and not libvirt's snapshot API: the L2s' disks live inside the
L1's disk, so a consistent state needs the L2s paused (or shut down) inside the
L1 first; then the L1's memory is one libvirt save and its disk one hard link and
a new empty top (no copy, no libvirt snapshot metadata that `down` would have
to find, and the same for Windows and Linux L1s). How an L1 is kept and woken
again is the baseline's (nestlab/commands/reset.py).

- save: per L1, its L2s paused, the L1 saved with its memory
  (``hosts/L1/snapshots/NAME.state``), its disk frozen into
  ``hosts/L1/snapshots/NAME.qcow2`` under a new top; then every L1 restored from
  that memory (its L2s resumed) and up's steps prove them. All L1s are kept
  before any runs again, so the snapshot is one moment of the whole lab.
- restore: per L1, powered off, a new empty top on its layer of NAME, its
  memory of NAME restored; then up's steps. What was not saved is gone, as with
  `reset`.
- list: name, when it was saved, its size on disk (all L1s' layers and memories), and
  whether every L1 has its layer (a save cut short, or an L1 rebuilt since,
  leaves an incomplete one, which restore refuses).
- delete: refused while a later snapshot, the baseline or an L1's current disk
  is backed by it (that file would lose its content); nothing is deleted then.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from nestlab.commands.context import LabContext
from nestlab.commands.reset import LayerResult, go_back_and_wake, keep_and_wake
from nestlab.commands.up import bring_back_hosts
from nestlab.errors import InputError
from nestlab.progress import Reporter
from nestlab.state.record import iso_utc, lab_lock
from nestlab.virt import layers


class NoSuchSnapshot(InputError):
    """A snapshot name the lab has no (complete) snapshot of: exit 2."""


class SnapshotExists(InputError):
    """`save` of a name that is taken: nestlab never overwrites a layer."""


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    saved: str
    """When it was saved (UTC, the newest of its L1s' layers)."""
    bytes_on_disk: int
    hosts: list[str]
    missing: list[str]
    """L1s without a layer of it: restore refuses it."""


def list_snapshots(lab_dir: Path) -> list[SnapshotInfo]:
    """The lab's snapshots, oldest first (read from the L1s' folders; no lock, no VM)."""
    ctx = LabContext.load(lab_dir)
    names = sorted({n for h in ctx.plan.hosts for n in layers.snapshot_names(h)})
    found = []
    for name in names:
        files = {h.name: layers.layer_file(layers.snapshot_path(h, name))
                 for h in ctx.plan.hosts if layers.snapshot_path(h, name).exists()}
        states = [layers.state_path(f.path) for f in files.values()]
        found.append(SnapshotInfo(
            name, iso_utc(max(f.frozen for f in files.values())),
            sum(f.bytes_on_disk for f in files.values())
            + sum(layers.layer_file(p).bytes_on_disk for p in states if p.exists()),
            sorted(files),
            [h.name for h in ctx.plan.hosts if h.name not in files]))
    return sorted(found, key=lambda s: (s.saved, s.name))


def save(lab_dir: Path, name: str, reporter: Reporter) -> LayerResult:
    """Keep the lab as it is now under ``name``; everything is running and proven after."""
    layers.check_snapshot_name(name)
    ctx = LabContext.load(lab_dir)
    result = LayerResult(ctx.name, "save", name, [h.name for h in ctx.plan.hosts])
    with lab_lock(lab_dir, f"snapshot save {name}"):
        ctx.require_local_disks("a snapshot")
        ctx.require_sandbox_running()
        _finish_interrupted(ctx)
        if any(layers.snapshot_path(h, name).exists() for h in ctx.plan.hosts):
            raise SnapshotExists(f"lab {ctx.name} has a snapshot {name} already",
                                 hint=f"Pick another name, or `nestlab snapshot delete {name}` "
                                      "first.")
        keep_and_wake(ctx, ctx.plan.hosts, partial(layers.snapshot_path, name=name),
                      f"snapshot {name}", reporter, result.notes)
        result.proofs = bring_back_hosts(ctx, reporter)
    return result


def restore(lab_dir: Path, name: str, reporter: Reporter) -> LayerResult:
    """Every L1 back to snapshot ``name``, started and proven; unsaved changes are lost."""
    layers.check_snapshot_name(name)
    ctx = LabContext.load(lab_dir)
    result = LayerResult(ctx.name, "restore", name, [h.name for h in ctx.plan.hosts])
    with lab_lock(lab_dir, f"snapshot restore {name}"):
        ctx.require_local_disks("a snapshot")
        ctx.require_sandbox_running()
        _finish_interrupted(ctx)
        _require_complete(ctx, name)
        go_back_and_wake(ctx, ctx.plan.hosts, partial(layers.snapshot_path, name=name),
                         f"back to snapshot {name}", reporter, result.notes)
        result.proofs = bring_back_hosts(ctx, reporter)
    return result



def delete(lab_dir: Path, name: str) -> LayerResult:
    """Delete snapshot ``name`` (every L1's layer of it), or nothing when one is in use."""
    layers.check_snapshot_name(name)
    ctx = LabContext.load(lab_dir)
    with lab_lock(lab_dir, f"snapshot delete {name}"):
        _finish_interrupted(ctx)
        hosts = [h for h in ctx.plan.hosts if layers.snapshot_path(h, name).exists()]
        if not hosts:
            raise _no_such(ctx, name)
        for host in hosts:  # all checked before any is deleted
            layers.refuse_in_use(host, name)
        for host in hosts:
            layers.remove_snapshot_layer(host, name)
        return LayerResult(ctx.name, "delete", name, [h.name for h in hosts])


def _finish_interrupted(ctx: LabContext) -> None:
    for host in ctx.plan.hosts:
        layers.finish_interrupted(host)


def _require_complete(ctx: LabContext, name: str) -> None:
    missing = [h.name for h in ctx.plan.hosts if not layers.snapshot_path(h, name).exists()]
    if len(missing) == len(ctx.plan.hosts):
        raise _no_such(ctx, name)
    if missing:
        raise NoSuchSnapshot(f"snapshot {name} of lab {ctx.name} has no layer for "
                             f"{', '.join(missing)} (a save cut short, or an L1 rebuilt since)",
                             hint=f"`nestlab snapshot delete {name}` removes what is left of it.")


def _no_such(ctx: LabContext, name: str) -> NoSuchSnapshot:
    names = sorted({n for h in ctx.plan.hosts for n in layers.snapshot_names(h)})
    return NoSuchSnapshot(f"lab {ctx.name} has no snapshot {name}",
                          hint=f"Its snapshots: {', '.join(names)}." if names else
                               "It has none: `nestlab snapshot save NAME` makes one.")
