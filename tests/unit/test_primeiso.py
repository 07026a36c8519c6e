"""The prime's ISO for Hyper-V L2s: isolinux boots its kernel with the L2's settings."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pycdlib
import pytest

from nestlab.build.images import BuiltImage
from nestlab.build.primeiso import prime_cmdline, write_prime_iso
from nestlab.errors import NestlabError


def fake_image(folder: Path, with_isolinux: bool = True) -> BuiltImage:
    names = ["vmlinuz", "initrd.img"] + (["isolinux.bin", "ldlinux.c32"] if with_isolinux
                                         else [])
    for name in names:
        (folder / name).write_bytes(f"{name} bytes".encode() * 200)
    return BuiltImage(name="prime", key="k", path=folder, kernel=folder / "vmlinuz",
                      initrd=folder / "initrd.img", disk=None, size=0, seconds=0, built="")


def read(iso_path: Path, name: str) -> bytes:
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path=f"/isolinux/{name}")
        return out.getvalue()
    finally:
        iso.close()


def test_cmdline_carries_name_key_and_static_address() -> None:
    line = prime_cmdline("prime1", "ssh-ed25519 AAAA lab", "192.168.100.10/24", "192.168.100.1")
    words = line.split()
    assert "nestlab.hostname=prime1" in words
    assert "nestlab.ip=192.168.100.10/24" in words and "nestlab.gw=192.168.100.1" in words
    key = next(w for w in words if w.startswith("nestlab.authkey="))
    assert base64.b64decode(key.split("=", 1)[1]).decode() == "ssh-ed25519 AAAA lab"
    assert "nestlab.ip" not in prime_cmdline("p", "k", None, None)


def test_iso_is_bootable_and_holds_the_config(tmp_path: Path) -> None:
    image = fake_image(tmp_path)
    iso_path = tmp_path / "prime1.iso"
    write_prime_iso(iso_path, image, "console=ttyS0 nestlab.hostname=prime1")
    config = read(iso_path, "isolinux.cfg").decode()
    assert "KERNEL /isolinux/vmlinuz" in config and "INITRD /isolinux/initrd.img" in config
    assert "APPEND console=ttyS0 nestlab.hostname=prime1" in config
    assert read(iso_path, "vmlinuz") == (tmp_path / "vmlinuz").read_bytes()
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        assert iso.eltorito_boot_catalog is not None
    finally:
        iso.close()


def test_an_image_without_isolinux_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NestlabError, match=r"has no .*isolinux\.bin"):
        write_prime_iso(tmp_path / "x.iso", fake_image(tmp_path, with_isolinux=False), "")
