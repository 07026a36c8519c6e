"""An image's uncompressed kernel: found inside a bzImage, kept only with a PVH entry;
and its unpacking in an L1 (the real sh and zstd of this machine)."""

from __future__ import annotations

import gzip
import lzma
import struct
import subprocess
from pathlib import Path

import pytest

from nestlab.build.kernel import has_pvh_entry, pvh_vmlinux
from nestlab.provision.linux import unpack_kernel_argv


def elf(notes: list[tuple[bytes, int]]) -> bytes:
    """A 64-bit ELF with one PT_LOAD and one PT_NOTE holding ``notes`` (name, type)."""
    body = b"".join(
        struct.pack("<III", len(name) + 1, 4, kind) + _pad(name + b"\0") + b"\0\0\0\0"
        for name, kind in notes)
    phoff, phentsize = 64, 56
    note_at = phoff + 2 * phentsize
    header = (b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
              + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x1000000, phoff, 0, 0, 64,
                            phentsize, 2, 0, 0, 0))
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, note_at, note_at, 0x1000)
    note = struct.pack("<IIQQQQQQ", 4, 4, note_at, 0, 0, len(body), len(body), 4)
    return header + load + note + body


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def bzimage(payload: bytes, setup_sects: int = 1, version: int = 0x020F) -> bytes:
    """A bzImage's layout as the boot protocol describes it: boot sector and setup
    (setup_sects * 512 bytes after the first sector), then the protected-mode code in
    which the compressed kernel lies at payload_offset."""
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, version)
    offset = 0x40  # the decompressor stub comes first
    struct.pack_into("<II", setup, 0x248, offset, len(payload))
    return bytes(setup) + bytes(offset) + payload + struct.pack("<I", 12345)


PVH = elf([(b"Xen", 6), (b"Xen", 18)])  # XEN_ELFNOTE_PHYS32_ENTRY is 18
NO_PVH = elf([(b"Xen", 6), (b"GNU", 3)])


def test_the_kernel_of_an_xz_or_gzip_bzimage_with_a_pvh_entry_is_found() -> None:
    assert has_pvh_entry(PVH) and not has_pvh_entry(NO_PVH)
    assert pvh_vmlinux(bzimage(lzma.compress(PVH, format=lzma.FORMAT_XZ))) == PVH
    assert pvh_vmlinux(bzimage(gzip.compress(PVH), setup_sects=4)) == PVH


@pytest.mark.parametrize("image", [
    bzimage(lzma.compress(NO_PVH, format=lzma.FORMAT_XZ)),  # no PVH entry: boot the bzImage
    bzimage(lzma.compress(PVH, format=lzma.FORMAT_XZ), version=0x0206),  # too old a header
    bzimage(b"\x28\xb5\x2f\xfd" + bytes(40)),  # zstd: not handled here
    bzimage(b"\xfd7zXZ\x00" + bytes(40)),  # damaged xz
    bzimage(b""),
    b"\x7fELF" + bytes(600),  # not a bzImage
    b"",
])
def test_anything_else_is_booted_as_it_is(image: bytes) -> None:
    assert pvh_vmlinux(image) is None


def test_the_kernel_is_unpacked_and_the_copy_named_last(tmp_path: Path) -> None:
    kernel, zst = tmp_path / "vmlinuz", tmp_path / "vmlinux.zst"
    kernel.write_bytes(b"the bzImage of before")
    subprocess.run(["zstd", "-q", "-o", f"{zst}.new", "-"], input=PVH, check=True)
    subprocess.run(unpack_kernel_argv(str(zst), str(kernel)), check=True)
    assert kernel.read_bytes() == PVH and zst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vmlinux.zst", "vmlinuz"]


def test_a_damaged_copy_changes_nothing(tmp_path: Path) -> None:
    kernel, zst = tmp_path / "vmlinuz", tmp_path / "vmlinux.zst"
    kernel.write_bytes(b"the bzImage of before")
    Path(f"{zst}.new").write_bytes(b"\x28\xb5\x2f\xfd not zstd after all")
    result = subprocess.run(unpack_kernel_argv(str(zst), str(kernel)), capture_output=True,
                            check=False)
    assert result.returncode != 0
    assert kernel.read_bytes() == b"the bzImage of before" and not zst.exists()
