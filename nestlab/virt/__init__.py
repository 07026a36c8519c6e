"""Applying a Plan through libvirt on L0: connection, owned objects, disks."""

DEFAULT_URI = "qemu:///system"
"""L0's libvirt when neither --connect nor LIBVIRT_DEFAULT_URI names one (here, so that
naming it imports no libvirt)."""
