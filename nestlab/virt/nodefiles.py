"""What `up` copies to a node before it defines an L1 there: the L1's base image, once
per node and image, and the L1's own files (its overlay, kernel, initrd, seed), each at
the same path as on this host (``virt.volumes``). A lab at a local URI (or in a
sandbox) needs none of it: its libvirt reads this host's files."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import libvirt

from nestlab.build.images import BuiltImage, find_image
from nestlab.plan import HostPlan
from nestlab.virt import volumes


def needs_copies(uri: str, node: str | None) -> bool:
    """Whether the lab's libvirt is another machine's: a node whose URI names a host."""
    return node is not None and bool(urlsplit(uri).hostname)


def image_files(image: BuiltImage | None) -> list[Path]:
    """The files of a base image an L1 on a node boots from (its disk)."""
    return [image.disk] if image is not None and image.disk is not None else []


def host_files(host: HostPlan) -> list[Path]:
    """The L1's files on this host, as `up` made them (its folder's files)."""
    folder = host.disk_path.parent
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def push_files(conn: libvirt.virConnect | None, files: list[Path]) -> bool:
    """Copy the files the node lacks; True when any was copied."""
    assert conn is not None
    copied = False
    for path in files:
        copied = volumes.push_file(conn, path) or copied
    return copied


def files_present(conn: libvirt.virConnect | None, files: list[Path]) -> bool | None:
    """Whether the node has every file (None: no libvirt to ask)."""
    if conn is None:
        return None
    return bool(files) and all(volumes.file_present(conn, path) for path in files)


def image_present(conn: libvirt.virConnect | None, name: str) -> bool | None:
    """Whether the node has the cached image ``name`` (False while this host lacks it)."""
    return files_present(conn, image_files(find_image(name)))


def remove_host_files(conn: libvirt.virConnect, hosts: list[HostPlan]) -> list[str]:
    """Delete the node's copies of the L1s' folders; the folders that had one."""
    return [str(h.disk_path.parent) for h in hosts
            if volumes.remove_folder(conn, h.disk_path.parent)]
