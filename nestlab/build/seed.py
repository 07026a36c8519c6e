"""The per-L1 seed medium: a small ISO (label NLSEED) read at first boot.

A Linux L1's nestlab-firstboot reads its hostname and the lab's public key
(Rock Ridge names); a Windows L1's setup reads autounattend.xml and winrm.ps1
(Joliet names). Built with pycdlib, so no external tool is needed. A medium
that holds a secret (a Windows answer file) is written 0600.
"""

from __future__ import annotations

import io
from pathlib import Path

import pycdlib

from nestlab.files import write_atomic

SEED_LABEL = "NLSEED"


def write_seed_iso(path: Path, files: dict[str, str], label: str = SEED_LABEL,
                   mode: int = 0o644) -> None:
    """Write an ISO 9660 image (Rock Ridge and Joliet names) with ``files`` at its root."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=label, rock_ridge="1.09", joliet=3)
    for name, text in sorted(files.items()):
        data = text.encode()
        iso_name = "/" + name.upper().replace("-", "_").replace(".", "_")[:30] + ".;1"
        iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path="/" + name)
    buffer = io.BytesIO()
    iso.write_fp(buffer)
    iso.close()
    write_atomic(path, buffer.getvalue(), mode=mode)


def read_seed_iso(path: Path, names: str = "rock-ridge") -> dict[str, str]:
    """Read the files back by their Rock Ridge (Linux) or Joliet (Windows) names."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        out = {}
        if names == "joliet":
            listing = [(c.file_identifier().decode("utf-16-be"), c)
                       for c in iso.list_children(joliet_path="/")]
        else:
            listing = [(c.rock_ridge.name().decode() if c.rock_ridge else "", c)
                       for c in iso.list_children(rr_path="/")]
        for name, child in listing:
            if child.is_file():
                buffer = io.BytesIO()
                key = {"joliet_path" if names == "joliet" else "rr_path": "/" + name}
                iso.get_file_from_iso_fp(buffer, **key)
                out[name] = buffer.getvalue().decode()
        return out
    finally:
        iso.close()
