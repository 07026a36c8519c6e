"""Transports to guests, by scheme. Each lives in its own module, imported when used."""

from __future__ import annotations

import importlib

from nestlab.errors import NestlabError
from nestlab.transport.base import (
    CommandFailed,
    CommandResult,
    Transport,
    TransportError,
    Unreachable,
)

__all__ = ["CommandFailed", "CommandResult", "Transport", "TransportError", "Unreachable",
           "transport_class"]

# scheme -> (module, class, the package that provides its dependency)
_REGISTRY = {
    "ssh": ("nestlab.transport.ssh", "SSHTransport", "paramiko"),
    "winrm": ("nestlab.transport.winrm", "WinRMTransport", "pypsrp"),
}


def transport_class(scheme: str) -> type[Transport]:
    """The class for a scheme; says which package to install when it is missing."""
    if scheme not in _REGISTRY:
        raise NestlabError(f"no transport for {scheme!r} yet; known: {', '.join(_REGISTRY)}")
    module_name, class_name, package = _REGISTRY[scheme]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise NestlabError(f"the {scheme} transport needs the {package} package ({exc})",
                           hint=f"pip install {package}") from None
    cls: type[Transport] = getattr(module, class_name)
    return cls
