"""Applying a Plan through libvirt on L0: connection, owned objects, disks."""
