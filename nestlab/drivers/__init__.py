"""L1 drivers, one per operating-system family, chosen here and nowhere else.

Each lives in its own module, imported when used (the model of pytest-testinfra's
``get_backend()``). A new OS family is one module here, its templates, and its
entry in ``systems.OS_PROFILES``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from nestlab.drivers.base import ConsoleLog, L1Driver, Proof, Shell, Timeouts
from nestlab.plan import HostPlan

if TYPE_CHECKING:
    from nestlab.commands.context import LabContext

__all__ = ["ConsoleLog", "L1Driver", "Proof", "Shell", "Timeouts", "driver_class", "driver_for"]

# family -> (module, class)
_REGISTRY = {
    "linux": ("nestlab.drivers.linux", "LinuxDriver"),
    "windows": ("nestlab.drivers.windows", "WindowsDriver"),
}


def driver_class(host: HostPlan) -> type[L1Driver]:
    """The driver class of the L1's operating-system family (for what it can do)."""
    module_name, class_name = _REGISTRY[host.family]
    cls: type[L1Driver] = getattr(importlib.import_module(module_name), class_name)
    return cls


def driver_for(ctx: LabContext, host: HostPlan) -> L1Driver:
    """The driver of the L1's operating-system family, for this lab."""
    return driver_class(host)(ctx)
