"""An image's kernel uncompressed, booted through its PVH entry.

A Debian kernel is a bzImage: a small loader that first decompresses the kernel (xz,
~0.7 s natively). Under emulation that takes ~4 s for an L1 and as long again for every
L2 inside it, before the kernel's own clock starts. QEMU boots an uncompressed kernel
(an ELF ``vmlinux``) directly when it has a PVH entry point (a Xen ELF note that
Debian's kernels carry, CONFIG_PVH), so nothing is decompressed at boot.
"""

from __future__ import annotations

import gzip
import lzma
import struct
from collections.abc import Callable
from pathlib import Path

_HEADER_MAGIC = b"HdrS"  # the bzImage setup header's signature, at 0x202
_ELF_MAGIC = b"\x7fELF"
_PT_NOTE = 4
_XEN_ELFNOTE_PHYS32_ENTRY = 18  # the PVH entry point
_DECOMPRESSORS: dict[bytes, Callable[[bytes], bytes]] = {
    b"\xfd7zXZ\x00": lambda data: lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data),
    b"\x1f\x8b": gzip.decompress,
}


def pvh_vmlinux(bzimage: bytes) -> bytes | None:
    """The ELF kernel inside a bzImage when it has a PVH entry point; None when the file
    is not a bzImage, its payload is compressed in a way not handled here, or the kernel
    cannot be booted by PVH (then the bzImage is booted as before)."""
    payload = _payload(bzimage)
    if payload is None:
        return None
    for magic, decompress in _DECOMPRESSORS.items():
        if payload.startswith(magic):
            try:
                elf = decompress(payload)
            except (lzma.LZMAError, OSError, EOFError):  # gzip raises OSError (BadGzipFile)
                return None
            return elf if has_pvh_entry(elf) else None
    return None


def _payload(bzimage: bytes) -> bytes | None:
    """The compressed kernel of a bzImage, from its setup header (boot protocol >= 2.08:
    payload_offset at 0x248 and payload_length at 0x24c, counted from the protected-mode
    code, which follows the setup_sects * 512 bytes of setup and the boot sector)."""
    if len(bzimage) < 0x250 or bzimage[0x202:0x206] != _HEADER_MAGIC:
        return None
    if struct.unpack_from("<H", bzimage, 0x206)[0] < 0x208:
        return None
    setup_sects = bzimage[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + offset
    if length == 0 or start + length > len(bzimage):
        return None
    return bzimage[start:start + length]


def has_pvh_entry(elf: bytes) -> bool:
    """Whether a 64-bit little-endian ELF has the Xen note that names a PVH entry point."""
    if len(elf) < 64 or elf[:4] != _ELF_MAGIC or elf[4] != 2 or elf[5] != 1:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for index in range(phnum):
        at = phoff + index * phentsize
        if at + 56 > len(elf):
            return False
        p_type, = struct.unpack_from("<I", elf, at)
        if p_type != _PT_NOTE:
            continue
        offset, = struct.unpack_from("<Q", elf, at + 8)
        size, = struct.unpack_from("<Q", elf, at + 32)
        if _notes_have_pvh(elf[offset:offset + size]):
            return True
    return False


def _notes_have_pvh(notes: bytes) -> bool:
    at = 0
    while at + 12 <= len(notes):
        namesz, descsz, kind = struct.unpack_from("<III", notes, at)
        name = notes[at + 12:at + 12 + namesz].rstrip(b"\0")
        if name == b"Xen" and kind == _XEN_ELFNOTE_PHYS32_ENTRY:
            return True
        at += 12 + _aligned(namesz) + _aligned(descsz)
    return False


def _aligned(size: int) -> int:
    return (size + 3) & ~3


def write_pvh_vmlinux(bzimage: Path, out: Path) -> bool:
    """Write ``out`` (the uncompressed kernel) when ``bzimage`` can be booted by PVH;
    True when written."""
    elf = pvh_vmlinux(bzimage.read_bytes())
    if elf is None:
        return False
    out.write_bytes(elf)
    return True
