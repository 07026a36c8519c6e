"""Where nestlab keeps lab state and cached images. Nothing else decides a path."""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value else Path.home() / fallback


def data_root() -> Path:
    """Lab state (disks, keys, logs). ``NESTLAB_HOME`` overrides.

    As root the default is /var/lib/nestlab, not ~/.local: qemu:///system runs
    QEMU as its own user, which cannot traverse /root (mode 0700) to the disks.
    """
    if value := os.environ.get("NESTLAB_HOME"):
        return Path(value)
    if os.geteuid() == 0:
        return Path("/var/lib/nestlab")
    return _xdg("XDG_DATA_HOME", ".local/share") / "nestlab"


def cache_root() -> Path:
    """Built base images, keyed by recipe. ``NESTLAB_CACHE`` overrides."""
    if value := os.environ.get("NESTLAB_CACHE"):
        return Path(value)
    if os.geteuid() == 0:
        return Path("/var/cache/nestlab")
    return _xdg("XDG_CACHE_HOME", ".cache") / "nestlab"


def lab_dir(lab_name: str, root: Path | None = None) -> Path:
    """The state folder of one lab."""
    return (root or data_root()) / "labs" / lab_name
