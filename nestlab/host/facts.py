"""Read what the host check needs from the machine, and nothing else.

``HostFacts`` is a documented JSON format (``nestlab facts --json``): a user can
attach it to a bug report and ``nestlab check --facts FILE`` decides from it.
Deciding happens in ``hostcheck``; this module only reads.
"""

from __future__ import annotations

import errno
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from nestlab.errors import FactsFileError, shorten
from nestlab.files import MiB, read_bounded_text
from nestlab.programs import locate, runtime_programs

FACTS_FORMAT = 1
FACTS_FILE_LIMIT = 1 * MiB
"""A recorded facts file is about 5 KiB; anything far larger is not one."""
Vendor = Literal["intel", "amd", "other"]
_VENDORS: dict[str, Vendor] = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}
KvmModule = Literal["kvm_intel", "kvm_amd"]
_KVM_MODULES: tuple[KvmModule, ...] = ("kvm_intel", "kvm_amd")


class _Facts(BaseModel):
    # strict: a recorded file says exactly what was read. Lax mode would take
    # "format": true for 1, "device_present": "yes" or 1 for True, "mem_total":
    # "5" for 5, and decide from facts no machine reported. (JSON arrays are
    # still tuples: strict JSON allows that.)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class CpuFacts(_Facts):
    vendor: Vendor
    model_name: str
    flags: tuple[str, ...]
    """Every flag of the first processor in /proc/cpuinfo, sorted."""
    count: int | None = None
    """How many processors /proc/cpuinfo lists; None in files recorded before it was read."""


class KvmFacts(_Facts):
    device_present: bool
    device_openable: bool
    device_error: str | None = None
    """Why /dev/kvm could not be opened, as the OS said it."""
    module: KvmModule | None = None
    nested: str | None = None
    """The module's ``nested`` parameter as read: Intel prints Y/N, AMD 1/0."""
    slat: str | None = None
    """``ept`` (Intel) or ``npt`` (AMD) parameter as read."""
    hyperv_emulation: Literal["y", "n"] | None = None
    """CONFIG_KVM_HYPERV in /boot/config-RELEASE (an option since Linux 6.8); None when the
    kernel has no such option (always built in before 6.8) or no config is found."""


class DomainCapsFacts(_Facts):
    """What ``virsh domcapabilities --virttype kvm`` says (only when kvm is offered)."""

    host_passthrough: bool
    host_model_features: tuple[str, ...]
    """Features that the host-model CPU requires (vmx/svm show up here)."""
    hyperv_features: tuple[str, ...] | None
    """Hyper-V enlightenments libvirt can offer; None when it does not list them (< 9.0)."""
    firmware: tuple[str, ...]
    """UEFI loader paths libvirt knows."""


class LibvirtFacts(_Facts):
    uri: str
    reachable: bool
    error: str | None = None
    version: str | None = None
    daemon_installed: bool
    domain_types: tuple[str, ...] = ()
    """Domain types libvirt offers for x86_64 guests, e.g. ('kvm', 'qemu')."""
    kvm_caps: DomainCapsFacts | None = None


class ResourceFacts(_Facts):
    mem_total: int
    mem_available: int
    disk_path: str
    disk_free: int


class HostFacts(_Facts):
    format: Literal[1] = 1
    kernel: str
    cpu: CpuFacts
    kvm: KvmFacts
    libvirt: LibvirtFacts
    qemu_binary: str | None
    ovmf_files: tuple[str, ...]
    resources: ResourceFacts
    programs: dict[str, str | None] | None = None
    """Each program nestlab needs on L0 (``nestlab.programs``) -> where it is, null when
    missing. None in files recorded before nestlab looked; a program not in the mapping
    was not looked for, so it is not judged."""

    @field_validator("format", mode="before")
    @classmethod
    def _format_is_an_int(cls, value: object) -> object:
        """pydantic matches Literal[1] by equality even when strict: true and 1.0 pass."""
        if type(value) is not int:
            raise PydanticCustomError("literal_error", "Input should be {expected}",
                                      {"expected": FACTS_FORMAT})
        return value


def load_facts(path: str | Path) -> HostFacts:
    """Read a recorded facts file (the JSON ``nestlab facts --json`` prints).

    A path that is not a readable regular UTF-8 file of at most
    ``FACTS_FILE_LIMIT`` bytes raises ``files.FileProblem`` (exit 2).
    """
    text = read_bounded_text(path, FACTS_FILE_LIMIT, "facts file")
    try:
        return HostFacts.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        # The location can hold the file's own keys: cut, escaped by the CLI.
        where = shorten(".".join(str(p) for p in first["loc"]), 80)
        raise FactsFileError(
            f"{path}: not a nestlab facts file (format {FACTS_FORMAT}): "
            f"{where}: {shorten(first['msg'], 200)} ({exc.error_count()} problem(s))",
            hint="Record one with `nestlab facts --json > FILE`.",
        ) from None


def read_host_facts(uri: str, disk_path: Path, sysroot: Path = Path("/")) -> HostFacts:
    """Read the machine. ``sysroot`` lets tests point the /proc and /sys reads at a tree."""
    cpu = read_cpu(sysroot)
    return HostFacts(
        kernel=os.uname().release,
        cpu=cpu,
        kvm=read_kvm(sysroot),
        libvirt=read_libvirt(uri),
        qemu_binary=shutil.which("qemu-system-x86_64"),
        ovmf_files=tuple(
            sorted(str(p) for p in (sysroot / "usr/share/OVMF").glob("OVMF_CODE*.fd"))
        ),
        resources=read_resources(sysroot, disk_path),
        programs=read_programs(),
    )


def read_programs() -> dict[str, str | None]:
    """Where each program nestlab runs on L0, or has libvirt run, is (None: missing)."""
    return {p.name: locate(p.name) for p in runtime_programs()}


def read_cpu(sysroot: Path) -> CpuFacts:
    return parse_cpuinfo((sysroot / "proc/cpuinfo").read_text())


def parse_cpuinfo(text: str) -> CpuFacts:
    """The CPU as /proc/cpuinfo's text says it (this host's, or a node's over SSH)."""
    info: dict[str, str] = {}
    lines = text.splitlines()
    for line in lines:
        if not line.strip():
            break  # the first processor is enough
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return CpuFacts(
        vendor=_VENDORS.get(info.get("vendor_id", ""), "other"),
        model_name=info.get("model name", "unknown"),
        flags=tuple(sorted(info.get("flags", "").split())),
        count=sum(1 for line in lines if line.partition(":")[0].strip() == "processor") or None,
    )


def read_kvm(sysroot: Path) -> KvmFacts:
    device = sysroot / "dev/kvm"
    present = device.exists()
    openable, error = False, None
    if present:
        try:
            fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            error = f"{errno.errorcode.get(exc.errno or 0, 'error')}: {exc.strerror}"
        else:
            os.close(fd)
            openable = True
    module = next(
        (m for m in _KVM_MODULES if (sysroot / "sys/module" / m).is_dir()), None
    )
    nested = slat = None
    if module is not None:
        params = sysroot / "sys/module" / module / "parameters"
        nested = _read_param(params / "nested")
        slat = _read_param(params / ("ept" if module == "kvm_intel" else "npt"))
    return KvmFacts(
        hyperv_emulation=_kernel_option(sysroot / "boot" / f"config-{os.uname().release}",
                                        "CONFIG_KVM_HYPERV"),
        device_present=present,
        device_openable=openable,
        device_error=error,
        module=module,
        nested=nested,
        slat=slat,
    )


def _kernel_option(config: Path, option: str) -> Literal["y", "n"] | None:
    try:
        text = config.read_text()
    except OSError:
        return None
    if f"{option}=y" in text:
        return "y"
    if f"# {option} is not set" in text:
        return "n"
    return None


def _read_param(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def read_resources(sysroot: Path, disk_path: Path) -> ResourceFacts:
    meminfo = parse_meminfo((sysroot / "proc/meminfo").read_text())
    existing = disk_path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return ResourceFacts(
        mem_total=meminfo.get("MemTotal", 0),
        mem_available=meminfo.get("MemAvailable", meminfo.get("MemFree", 0)),
        disk_path=str(disk_path),
        disk_free=shutil.disk_usage(existing).free,
    )


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo's values in bytes, by name."""
    meminfo = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields = value.split()
        if fields and fields[0].isdigit():
            meminfo[key] = int(fields[0]) * 1024  # values are in kB
    return meminfo


def read_libvirt(uri: str) -> LibvirtFacts:
    """Ask libvirt over a read-only connection; an unreachable daemon is a fact, not an error."""
    import libvirt

    installed = any(shutil.which(d, path="/usr/sbin:/usr/bin:/sbin") for d in
                    ("libvirtd", "virtqemud"))
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # we report errors ourselves
    try:
        conn = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as exc:
        return LibvirtFacts(
            uri=uri, reachable=False, error=str(exc), daemon_installed=installed
        )
    try:
        major, rest = divmod(conn.getLibVersion(), 1_000_000)
        minor, micro = divmod(rest, 1000)
        types = parse_domain_types(conn.getCapabilities())
        kvm_caps = None
        if "kvm" in types:
            try:
                xml = conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
                kvm_caps = parse_domain_capabilities(xml)
            except libvirt.libvirtError:
                kvm_caps = None  # libvirt lists kvm but cannot describe it: treated as absent
        return LibvirtFacts(
            uri=uri,
            reachable=True,
            version=f"{major}.{minor}.{micro}",
            daemon_installed=installed,
            domain_types=types,
            kvm_caps=kvm_caps,
        )
    finally:
        conn.close()


def parse_domain_types(capabilities_xml: str) -> tuple[str, ...]:
    """Domain types offered for x86_64 hvm guests in ``virsh capabilities``."""
    root = ET.fromstring(capabilities_xml)  # noqa: S314 - libvirt's own output
    types: set[str] = set()
    for guest in root.findall("guest"):
        arch = guest.find("arch")
        if guest.findtext("os_type") == "hvm" and arch is not None and (
            arch.get("name") == "x86_64"
        ):
            types.update(d.get("type", "") for d in arch.findall("domain"))
    return tuple(sorted(t for t in types if t))


def parse_domain_capabilities(xml: str) -> DomainCapsFacts:
    """Pick out of ``virsh domcapabilities`` what nesting and Hyper-V depend on."""
    root = ET.fromstring(xml)  # noqa: S314 - libvirt's own output
    passthrough = root.find("cpu/mode[@name='host-passthrough']")
    host_model = root.find("cpu/mode[@name='host-model']")
    features: tuple[str, ...] = ()
    if host_model is not None:
        features = tuple(
            sorted(
                f.get("name", "")
                for f in host_model.findall("feature")
                if f.get("policy") == "require"
            )
        )
    hyperv = root.find("features/hyperv")
    hyperv_features: tuple[str, ...] | None = None
    if hyperv is not None and hyperv.get("supported") == "yes":
        hyperv_features = tuple(
            sorted(v.text or "" for v in hyperv.findall("enum[@name='features']/value"))
        )
    firmware = tuple(sorted(v.text or "" for v in root.findall("os/loader/value")))
    return DomainCapsFacts(
        host_passthrough=passthrough is not None and passthrough.get("supported") == "yes",
        host_model_features=features,
        hyperv_features=hyperv_features,
        firmware=firmware,
    )
