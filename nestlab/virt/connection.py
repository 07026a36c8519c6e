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


def conn_uri(conn: libvirt.virConnect) -> str:
    """The URI of an open connection, for messages."""
    try:
        return str(conn.getURI())
    except libvirt.libvirtError:
        return "libvirt"


def failure(conn: libvirt.virConnect, doing: str, exc: libvirt.libvirtError,
            hint: str = "Is the lab's libvirtd running? `nestlab status` shows it.",
            ) -> LibvirtError:
    """Anything but "no such object" is a failure to report, never taken as "absent"."""
    return LibvirtError(f"{conn_uri(conn)}: {doing} failed: "
                        f"{exc.get_error_message() or exc}", hint=hint)
