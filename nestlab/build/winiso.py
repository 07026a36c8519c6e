"""Which Windows Server a user's ISO holds, read from the ISO itself: the image names
in its install.wim ('Windows Server 2022 SERVERSTANDARD', ...).

The volume label cannot tell: evaluation ISOs of 2016, 2019 and 2022 carry labels
like SSS_X64FREE_EN-US_DV9, which osinfo-db matches for all of them with one pattern.
Windows ISOs keep their files on UDF; the ISO 9660 side holds only a README (pycdlib
issue #22), so the UDF side is read. A WIM file starts with a 208-byte header; at
0x48 it locates its XML data (7 bytes of size and 1 of flags, the offset, the original
size; wimlib's include/wimlib/header.h), which is stored uncompressed as UTF-16 and
names every image. Sources: docs/windows-versions.md.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from nestlab.errors import InputError
from nestlab.lab.systems import OS, WINDOWS_IMAGES

INSTALL_IMAGES = ("/sources/install.wim", "/sources/install.esd")
WIM_MAGIC = b"MSWIM\0\0\0"
WIM_HEADER_SIZE = 208
XML_RESOURCE_AT = 0x48
XML_LIMIT = 1024 * 1024
"""The XML of a four-image install.wim is a few dozen KiB; more is not a Windows ISO."""


class IsoNotRecognized(InputError):
    """The ISO's Windows version could not be read from it."""


@dataclass(frozen=True)
class WindowsIso:
    """What a Windows ISO holds, as far as a base image build cares."""

    image_names: tuple[str, ...]
    """The names setup's answer file can ask for (/IMAGE/NAME), in the WIM's order."""

    @property
    def version(self) -> OS | None:
        """The Windows Server whose images these are; None when they are no version
        nestlab builds (or several)."""
        found = {os for os in WINDOWS_IMAGES.values()
                 if any(name.startswith(f"{os.profile.product} SERVER")
                        for name in self.image_names)}
        return found.pop() if len(found) == 1 else None


def read_windows_iso(iso: Path) -> WindowsIso:
    """The image names of the ISO's install.wim (or install.esd)."""
    if not iso.is_file():
        raise IsoNotRecognized(f"{iso}: no such ISO file")
    cd = pycdlib.PyCdlib()
    try:
        cd.open(str(iso))
    except (PyCdlibException, OSError, ValueError) as exc:
        raise IsoNotRecognized(f"{iso}: not an ISO image that can be read ({exc})",
                               hint=_NAME_IT) from None
    try:
        return WindowsIso(_image_names(iso, _read_wim_xml(cd, iso)))
    finally:
        cd.close()


def base_image_of(found: WindowsIso, iso: Path) -> str:
    """The base image an ISO with these images builds: windows-server-2016, -2019 or -2022."""
    if found.version is None:
        raise IsoNotRecognized(
            f"{iso}: its install image holds {', '.join(found.image_names) or 'no images'}: "
            "not one of the Windows Server versions nestlab builds",
            hint="Use an ISO (evaluation works) of one of: "
                 f"{', '.join(v.profile.product for v in WINDOWS_IMAGES.values())}.")
    return found.version.profile.default_image


def check_iso_holds(iso: Path, wanted: str) -> str | None:
    """Refuse an ISO without the image the answer file asks for: setup would stop at an
    error on a screen no one watches, and the build would wait hours for it. An ISO whose
    images cannot be read is let through: returns what to say about it."""
    try:
        found = read_windows_iso(iso)
    except IsoNotRecognized as exc:
        return f"{exc.message}; installing {wanted!r} as asked"
    if wanted in found.image_names:
        return None
    other = found.version
    raise IsoNotRecognized(
        f"{iso} has no image {wanted!r}; its install image holds: "
        f"{', '.join(found.image_names) or 'no images'}",
        hint=f"This ISO is {other.profile.product}: nestlab image build "
             f"{other.profile.default_image} --iso {iso}" if other else _NAME_IT)


_NAME_IT = ("Name the version yourself: nestlab image build windows-server-2022 --iso PATH "
            "(or make acceptance-windows ... OS=windows-server-2022).")


def _read_wim_xml(cd: pycdlib.PyCdlib, iso: Path) -> bytes:
    if not cd.has_udf():
        raise IsoNotRecognized(f"{iso}: has no UDF file system, so it is no Windows setup ISO",
                               hint=_NAME_IT)
    for path in INSTALL_IMAGES:
        try:
            handle = cd.open_file_from_iso(udf_path=path)
        except PyCdlibException:
            continue  # not there: the other name
        with handle as wim:
            header = wim.read(WIM_HEADER_SIZE)
            if len(header) < WIM_HEADER_SIZE or not header.startswith(WIM_MAGIC):
                raise IsoNotRecognized(f"{iso}: {path} is not a WIM file", hint=_NAME_IT)
            size_and_flags, offset, _original = struct.unpack_from(
                "<QQQ", header, XML_RESOURCE_AT)
            size = size_and_flags & 0x00FF_FFFF_FFFF_FFFF
            if not 0 < size <= XML_LIMIT:
                raise IsoNotRecognized(f"{iso}: {path} names its images in {size} bytes, "
                                       f"not the 1..{XML_LIMIT} nestlab reads", hint=_NAME_IT)
            wim.seek(offset)
            return bytes(wim.read(size))
    raise IsoNotRecognized(f"{iso}: has no {' or '.join(INSTALL_IMAGES)}",
                           hint="Is it a Windows Server setup ISO? " + _NAME_IT)


def _image_names(iso: Path, data: bytes) -> tuple[str, ...]:
    """The images' names. The XML is bounded (XML_LIMIT) and may declare nothing: a WIM's
    XML has no DTD, so one with entities is refused before parsing."""
    try:
        text = data.decode("utf-16")
        if "<!" in text:
            raise ET.ParseError("it declares a DTD or entities, which a WIM's XML never does")
        root = ET.fromstring(text)  # noqa: S314 - bounded, and without a DTD (above)
    except (UnicodeDecodeError, ET.ParseError) as exc:
        raise IsoNotRecognized(f"{iso}: the install image's XML cannot be read ({exc})",
                               hint=_NAME_IT) from None
    return tuple((image.findtext("NAME") or "").strip() for image in root.findall("IMAGE"))
