"""nestlab: nested-virtualization labs on a Linux libvirt host."""

__version__ = "0.1.0"
