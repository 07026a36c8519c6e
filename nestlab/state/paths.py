"""Where nestlab keeps lab state and cached images. Nothing else decides a path.

nestlab runs as root and deletes lab folders, so a lab folder is only ever
derived from a valid lab name (the lab file's own rule) and must resolve to a
folder directly inside ``<data root>/labs``: no '..', no absolute path, no
empty name, no symlink leading elsewhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from nestlab.errors import InputError

# The lab file's rule for names (model.Name): a DNS label that is also safe in
# libvirt names, bridge names and file names.
LAB_NAME = re.compile(r"[a-z]([a-z0-9-]*[a-z0-9])?")
LAB_NAME_MAX = 20


class BadLabName(InputError):
    """A lab name given on the command line that no lab file could have."""


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


def labs_root(root: Path | None = None) -> Path:
    """The folder that holds one folder per lab."""
    return (root or data_root()) / "labs"


def check_lab_name(name: str) -> str:
    """Return ``name`` if a lab file could have it; raise ``BadLabName`` otherwise."""
    if not (LAB_NAME.fullmatch(name) and len(name) <= LAB_NAME_MAX):
        shown = name.encode("unicode_escape").decode()[:60]
        raise BadLabName(
            f"{shown!r} is not a lab name: use the lab file's `lab:` name (lower-case letters, "
            f"digits and '-', starting with a letter, at most {LAB_NAME_MAX} characters)",
            hint=f"Each lab has a folder in {labs_root()}.")
    return name


SEATED_NAME_MAX = LAB_NAME_MAX - len("-s01")
"""A lab with seats leaves room in its name for ``-sNN``."""


def seat_lab_name(lab: str, seat: int) -> str:
    """The lab that is seat ``seat`` (1-based) of ``lab``: ``course`` -> ``course-s01``."""
    return f"{lab}-s{seat:02d}"


def lab_dir(lab_name: str, root: Path | None = None) -> Path:
    """The state folder of one lab, checked to stay inside the labs folder."""
    labs = labs_root(root)
    folder = labs / check_lab_name(lab_name)
    return inside(labs, folder, f"the folder of lab {lab_name}")


def inside(parent: Path, path: Path, what: str) -> Path:
    """``path`` if it resolves (symlinks followed) to somewhere under ``parent``."""
    resolved_parent = parent.resolve()
    resolved = path.resolve()
    if resolved == resolved_parent or not resolved.is_relative_to(resolved_parent):
        raise InputError(f"{what} ({path}) resolves to {resolved}, outside {resolved_parent}; "
                         "nestlab refuses to use it")
    return path
