"""An L1's disk as layers: the state `reset` and snapshots return to, without copying.

An L1's disk (``hosts/NAME/disk.qcow2``) starts as a thin qcow2 overlay on the
cached base image. Freezing it (the L1 off: saved with its memory, or shut
down) keeps that very file as a read-only layer and puts a new, empty top layer
on it; the memory saved at that moment (``state_path``) goes with the layer:

    base image  <-  baseline.qcow2  <-  snapshots/A.qcow2  <-  disk.qcow2 (top)

- the **baseline** is the disk as the first proven `up` left it; `reset` throws
  the top away and puts a new empty one on the baseline;
- a **snapshot** is the top at the time it was saved; `restore` puts a new
  empty top on it. Saving while on a snapshot chains the new one on it.

Why renames and not copies: a frozen layer is the same file (a hard link, then
the old name is replaced by the new top with one rename), so freezing,
resetting and restoring cost one `qemu-img create` each, whatever the disk
holds, and each step leaves a valid disk if it is cut short (a crash between
the link and the rename leaves the top and the new layer one file, which the
next command finishes). A frozen layer is never written again: only a new top
is ever created on it, and a layer another file is backed by is never deleted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nestlab.errors import InputError, NestlabError
from nestlab.plan import HostPlan

SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
_FROZEN_MODE = 0o400


class BadSnapshotName(InputError):
    """A snapshot name that is not letters, digits, '-' and '_': exit 2."""


class LayerInUse(InputError):
    """A layer that another layer (or the L1's current disk) is backed by."""


def check_snapshot_name(name: str) -> str:
    """``name`` if it can name a snapshot (it becomes a file name)."""
    if not SNAPSHOT_NAME.fullmatch(name):
        shown = name.encode("unicode_escape").decode()[:60]
        raise BadSnapshotName(f"{shown!r} is not a snapshot name",
                              hint="Use letters, digits, '-' and '_' (at most 40, starting "
                                   "with a letter or digit).")
    return name


def baseline_path(host: HostPlan) -> Path:
    return host.disk_path.parent / "baseline.qcow2"


def snapshots_dir(host: HostPlan) -> Path:
    return host.disk_path.parent / "snapshots"


def snapshot_path(host: HostPlan, name: str) -> Path:
    return snapshots_dir(host) / f"{check_snapshot_name(name)}.qcow2"


def snapshot_names(host: HostPlan) -> list[str]:
    """The snapshots this L1 has a layer of."""
    folder = snapshots_dir(host)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.qcow2") if SNAPSHOT_NAME.fullmatch(p.stem))


def pins_path(layer: Path) -> Path:
    """The SSH host keys pinned when ``layer`` was frozen (its guests have those keys)."""
    return layer.with_suffix(".known_hosts")


def state_path(layer: Path) -> Path:
    """The L1's memory and device state saved at the moment ``layer`` was frozen
    (libvirt's save image): with it, going back to the layer is a restore, not a boot.
    Only valid together with its layer; a layer frozen from a shut-off L1 has none."""
    return layer.with_suffix(".state")


def has_baseline(host: HostPlan) -> bool:
    """A finished baseline: the file, and a top layer that is not that same file."""
    path = baseline_path(host)
    return path.exists() and not _same_file(path, host.disk_path)


def freeze_top(host: HostPlan, layer: Path) -> None:
    """The L1's current disk becomes ``layer`` (read-only, the same file) and a new empty
    top is put on it. The L1 must be shut off. Resumable: a ``layer`` that is already
    the top's file is finished; any other existing ``layer`` is refused."""
    disk = host.disk_path
    if not disk.exists():
        raise NestlabError(f"{host.name} has no disk to keep", hint="`nestlab up` makes it.")
    if layer.exists():
        if not _same_file(layer, disk):
            raise NestlabError(f"{layer} exists already; nestlab does not overwrite a layer")
    else:
        make_layer_folder(host, layer)
        os.link(disk, layer)
    layer.chmod(_FROZEN_MODE)
    new_top(host, layer)


def make_layer_folder(host: HostPlan, layer: Path) -> None:
    """The folder ``layer`` (and its memory state) go into, as reachable as the L1's own
    (QEMU must open them)."""
    layer.parent.mkdir(parents=True, exist_ok=True)
    layer.parent.chmod(host.disk_path.parent.stat().st_mode & 0o777)


def new_top(host: HostPlan, backing: Path) -> None:
    """Replace the L1's disk with a new empty layer on ``backing`` (one rename: the disk
    is always either the old top or the new one). The L1 must be shut off."""
    tmp = host.disk_path.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    result = subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(backing),
         str(tmp)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise NestlabError(f"{host.name}: cannot create its disk on {backing.name}: "
                           f"{result.stderr.strip()}")
    tmp.chmod(0o600)
    tmp.replace(host.disk_path)


def finish_interrupted(host: HostPlan) -> bool:
    """A freeze cut short leaves the top and a layer one file: give the layer its new top,
    so the L1 never writes into a layer. True when there was one to finish."""
    disk = host.disk_path
    if not disk.exists():
        return False
    for layer in [baseline_path(host), *(snapshot_path(host, n) for n in snapshot_names(host))]:
        if layer.exists() and _same_file(layer, disk):
            layer.chmod(_FROZEN_MODE)
            new_top(host, layer)
            return True
    return False


def backing_file(path: Path) -> Path | None:
    """The file ``path`` is backed by, as qemu-img reads it from the image (None: none)."""
    result = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NestlabError(f"cannot read the image {path}: {result.stderr.strip()}")
    info = json.loads(result.stdout)
    backing = info.get("full-backing-filename") or info.get("backing-filename")
    return Path(backing) if backing else None


def dependents(host: HostPlan, layer: Path) -> list[Path]:
    """The L1's files (its disk, its baseline, its other snapshots) directly backed by
    ``layer``."""
    files = [host.disk_path, baseline_path(host),
             *(snapshot_path(host, n) for n in snapshot_names(host))]
    return [f for f in files if f != layer and f.exists() and backing_file(f) == layer]


def remove_snapshot_layer(host: HostPlan, name: str) -> bool:
    """Delete this L1's layer of snapshot ``name``; refused while a file is backed by it.
    True when there was one."""
    layer = snapshot_path(host, name)
    if not layer.exists():
        return False
    refuse_in_use(host, name)
    layer.unlink()
    pins_path(layer).unlink(missing_ok=True)
    state_path(layer).unlink(missing_ok=True)
    return True


def refuse_in_use(host: HostPlan, name: str) -> None:
    """``LayerInUse`` when a file of the L1 is backed by its layer of snapshot ``name``."""
    layer = snapshot_path(host, name)
    users = dependents(host, layer)
    if users:
        shown = ", ".join("its current disk" if u == host.disk_path else
                          "its baseline" if u == baseline_path(host) else f"snapshot {u.stem}"
                          for u in users)
        raise LayerInUse(f"{host.name}: snapshot {name} is the layer under {shown}",
                         hint="Delete the later snapshots first; `nestlab reset` (or restoring "
                              "another snapshot) moves the current disk off it.")


@dataclass(frozen=True)
class LayerFile:
    path: Path
    bytes_on_disk: int
    frozen: float
    """When it was frozen: its inode's change time (the link and chmod that froze it; its
    content, and so its mtime, is never written again)."""


def layer_file(path: Path) -> LayerFile:
    """A layer's size on disk (allocated blocks, not its virtual size) and time."""
    st = path.stat()
    return LayerFile(path, st.st_blocks * 512, st.st_ctime)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except FileNotFoundError:
        return False
