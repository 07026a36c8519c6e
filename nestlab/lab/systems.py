"""The L1 operating systems nestlab runs: their names (``OS``) and what the lab file's
rules, the plan and the image builds need to know of each (``OSProfile``).

Plain data, apart from the model's validation, so that the command line can name the
Windows base images (``nestlab image build``) without loading the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from nestlab.files import GiB, MiB


class OS(StrEnum):
    windows_server_2016 = "windows-server-2016"
    windows_server_2019 = "windows-server-2019"
    windows_server_2022 = "windows-server-2022"
    debian_12 = "debian-12"

    @property
    def profile(self) -> OSProfile:
        return OS_PROFILES[self]


Family = Literal["linux", "windows"]


@dataclass(frozen=True)
class OSProfile:
    """What the lab file's rules and the plan need to know of an L1 operating system.

    Everything else that differs between OS families (how an L1 is reached,
    provisioned, proven and emptied) lives in its driver (``nestlab.drivers``),
    chosen by ``family``.
    """

    family: Family
    product: str
    """The operating system's own name: 'Windows Server 2022' (its install.wim names each
    image 'Windows Server 2022 SERVERSTANDARD' and so on)."""
    title: str
    """As messages name it: 'a Windows Server 2016 L1 with Hyper-V'."""
    default_image: str
    reserved_memory: int
    """What the L1 keeps for itself before its L2s get any memory."""
    min_memory: int
    max_name_length: int
    """The L1's name becomes its host name (DNS label) or computer name (NetBIOS: 15)."""
    name_rule: str
    """The rule behind ``max_name_length``, as a message says it."""
    guest_network_modes: tuple[str, ...]
    runs_hyperv: bool
    """The L1 is Hyper-V: its domain gets the Hyper-V preset (TSX off, eVMCS on Intel)."""
    nested_hyperv_on_amd: bool = False
    """Microsoft supports nested Hyper-V on AMD for this version (Windows Server 2022 on;
    docs/windows-versions.md): the host check then does not flag an AMD host."""


def _windows_server(year: int, nested_hyperv_on_amd: bool) -> OSProfile:
    """The Windows Server versions differ here only in name and in Microsoft's AMD support;
    their answer files differ only in the install image's name (docs/windows-versions.md)."""
    return OSProfile(
        family="windows", product=f"Windows Server {year}",
        title=f"a Windows Server {year} L1 with Hyper-V",
        default_image=f"windows-server-{year}", reserved_memory=2 * GiB, min_memory=4 * GiB,
        max_name_length=15,
        name_rule="a Windows computer name (NetBIOS) has at most 15 characters",
        guest_network_modes=("nat", "internal", "bridged"),
        runs_hyperv=True, nested_hyperv_on_amd=nested_hyperv_on_amd)


OS_PROFILES = {
    OS.debian_12: OSProfile(
        family="linux", product="Debian 12", title="a debian-12 L1", default_image="debian-12",
        reserved_memory=768 * MiB, min_memory=128 * MiB, max_name_length=20,
        name_rule="a host name has at most 20 characters here",
        guest_network_modes=("nat", "internal", "routed"), runs_hyperv=False),
    OS.windows_server_2016: _windows_server(2016, nested_hyperv_on_amd=False),
    OS.windows_server_2019: _windows_server(2019, nested_hyperv_on_amd=False),
    OS.windows_server_2022: _windows_server(2022, nested_hyperv_on_amd=True),
}
WINDOWS_IMAGES = {p.default_image: os for os, p in OS_PROFILES.items() if p.family == "windows"}
"""The base images built from a Windows ISO (``nestlab image build NAME --iso``), and
the OS each one is."""
