"""The per-L1 seed medium: a small ISO (label NLSEED) read at boot by nestlab-firstboot.

It carries only what is public or per-guest: the hostname and the lab's public
key. Built with pycdlib, so no external tool is needed.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pycdlib

SEED_LABEL = "NLSEED"


def write_seed_iso(path: Path, files: dict[str, str]) -> None:
    """Write an ISO 9660 image (Rock Ridge names) holding ``files`` at its root."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=SEED_LABEL, rock_ridge="1.09")
    for name, text in sorted(files.items()):
        data = text.encode()
        iso_name = "/" + name.upper().replace("-", "_").replace(".", "_")[:30] + ".;1"
        iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name)
    tmp = path.with_suffix(".tmp")
    iso.write(str(tmp))
    iso.close()
    os.replace(tmp, path)


def read_seed_iso(path: Path) -> dict[str, str]:
    """Read the files back (by their Rock Ridge names): for tests and `status`."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        out = {}
        for child in iso.list_children(rr_path="/"):
            if child.is_file():
                name = child.rock_ridge.name().decode()
                buffer = io.BytesIO()
                iso.get_file_from_iso_fp(buffer, rr_path="/" + name)
                out[name] = buffer.getvalue().decode()
        return out
    finally:
        iso.close()
