"""A bootable ISO of the guest prime for one L2 under Hyper-V (a Generation 1 VM's DVD).

Hyper-V cannot boot a kernel directly, so the prime's kernel and initrd go on
an El Torito ISO with isolinux; the kernel command line in isolinux.cfg carries
the L2's name, the lab's public key and, since WinNAT has no DHCP, its static
address. Built with pycdlib.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pycdlib

from nestlab.build.images import BuiltImage
from nestlab.errors import NestlabError
from nestlab.files import write_atomic

PRIME_ISO_LABEL = "NLPRIME"


def prime_cmdline(hostname: str, public_key: str, address: str | None,
                  gateway: str | None) -> str:
    words = ["console=tty0", "console=ttyS0,115200n8", f"nestlab.hostname={hostname}",
             "nestlab.authkey=" + base64.b64encode(public_key.encode()).decode()]
    if address:
        words.append(f"nestlab.ip={address}")
    if gateway:
        words.append(f"nestlab.gw={gateway}")
    return " ".join(words)


def isolinux_cfg(cmdline: str) -> str:
    return ("DEFAULT prime\nPROMPT 0\nTIMEOUT 0\nLABEL prime\n"
            "  KERNEL /isolinux/vmlinuz\n  INITRD /isolinux/initrd.img\n"
            f"  APPEND {cmdline}\n")


def write_prime_iso(path: Path, image: BuiltImage, cmdline: str) -> None:
    """Write the ISO atomically; every file sits in /isolinux (8.3 names, as isolinux reads)."""
    boot_files = {name: image.path / name for name in ("isolinux.bin", "ldlinux.c32")}
    missing = [str(p) for p in boot_files.values() if not p.exists()]
    if missing:
        raise NestlabError(f"image {image.name} has no {', '.join(missing)}",
                           hint=f"Rebuild it: nestlab image build {image.name}")
    kernel, initrd = image.bzimage_files()  # isolinux boots a bzImage
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, vol_ident=PRIME_ISO_LABEL, rock_ridge="1.09")
    iso.add_directory("/ISOLINUX", rr_name="isolinux")
    files: dict[str, bytes] = {
        "isolinux.bin": boot_files["isolinux.bin"].read_bytes(),
        "ldlinux.c32": boot_files["ldlinux.c32"].read_bytes(),
        "vmlinuz": kernel.read_bytes(),
        "initrd.img": initrd.read_bytes(),
        "isolinux.cfg": isolinux_cfg(cmdline).encode(),
    }
    for name, data in files.items():
        stem, _, ext = name.upper().partition(".")
        iso.add_fp(io.BytesIO(data), len(data), f"/ISOLINUX/{stem[:8]}.{ext[:3]};1",
                   rr_name=name)
    iso.add_eltorito("/ISOLINUX/ISOLINUX.BIN;1", bootcatfile="/ISOLINUX/BOOT.CAT;1",
                     boot_load_size=4, boot_info_table=True)
    buffer = io.BytesIO()
    iso.write_fp(buffer)
    iso.close()
    write_atomic(path, buffer.getvalue(), mode=0o644)
