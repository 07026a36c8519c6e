"""FAKE Windows setup ISOs, small enough for a unit test.

What they copy of the real ones: the files are on UDF only, with a README on the ISO 9660
side (pycdlib issue #22); sources/install.wim starts with the 208-byte WIM header whose
XML resource (at 0x48) points at UTF-16 XML naming each image (wimlib's header.h); the
image names and their order are those of the 2016/2019/2022 media
(docs/windows-versions.md). What they leave out: everything else, the images' data too.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pycdlib

EDITIONS = ("SERVERSTANDARDCORE", "SERVERSTANDARD", "SERVERDATACENTERCORE", "SERVERDATACENTER")
README = b"This disc contains a \"UDF\" file system and requires an operating system\r\n"


def image_names(product: str) -> list[str]:
    """The four images of an evaluation ISO, in their order: 'Windows Server 2022 ...'."""
    return [f"{product} {edition}" for edition in EDITIONS]


def wim_with_images(names: list[str], filler: int = 4096) -> bytes:
    """A WIM header and, after ``filler`` bytes, the XML that names the images."""
    images = "".join(f'<IMAGE INDEX="{i}"><NAME>{n}</NAME><DESCRIPTION>{n}</DESCRIPTION>'
                     f"<WINDOWS><VERSION><MAJOR>10</MAJOR></VERSION></WINDOWS></IMAGE>"
                     for i, n in enumerate(names, start=1))
    xml = f"\ufeff<WIM><TOTALBYTES>0</TOTALBYTES>{images}</WIM>".encode("utf-16-le")
    offset = 208 + filler
    header = bytearray(208)
    struct.pack_into("<8sIIII", header, 0, b"MSWIM\0\0\0", 208, 0x10D00, 0x2, 32768)
    struct.pack_into("<HHI", header, 0x28, 1, 1, len(names))
    struct.pack_into("<QQQ", header, 0x48, len(xml), offset, len(xml))
    return bytes(header) + b"\0" * filler + xml


def write_windows_iso(path: Path, install: bytes | None,
                      install_path: str = "/sources/install.wim") -> Path:
    """An ISO laid out like Windows setup media, holding ``install`` as its install image."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident="SSS_X64FREE_EN-US_DV9", udf="2.60")
    iso.add_fp(io.BytesIO(README), len(README), "/README.TXT;1")
    iso.add_directory(udf_path="/sources")
    if install is not None:
        iso.add_fp(io.BytesIO(install), len(install), udf_path=install_path)
    iso.write(str(path))
    iso.close()
    return path
