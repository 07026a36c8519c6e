"""Opening libvirt with errors a user can act on."""

from __future__ import annotations

import libvirt

from nestlab.errors import NestlabError


class LibvirtError(NestlabError):
    """libvirt refused or failed an operation; the message says which."""


def connect(uri: str) -> libvirt.virConnect:
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors are raised, not printed
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise LibvirtError(
            f"cannot connect to libvirt at {uri}: {exc}",
            hint="Start libvirtd (`sudo systemctl enable --now libvirtd`), pass --connect URI, "
                 "or use --sandbox to let nestlab run its own.",
        ) from None
