"""Decide, from host facts alone, how (and whether) a lab can run here.

No I/O: everything comes from ``HostFacts`` so that each verdict can be replayed
from a recorded facts file.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from nestlab.errors import HostCannotRunLab
from nestlab.host.facts import HostFacts
from nestlab.lab.model import Accel, GiB, Lab, human_size
from nestlab.lab.systems import OS
from nestlab.plural import counted
from nestlab.programs import RUNTIME_NEEDS, Need, install_command, runtime_programs

AccelChoice = Literal["kvm", "tcg", "none"]
Daemon = Literal["host", "sandbox", "unused"]
_ENABLED = {"Y", "y", "1"}
_MODULE = {"intel": "kvm_intel", "amd": "kvm_amd"}
_FLAG = {"intel": "vmx", "amd": "svm"}
_MIN_FREE_DISK = 4 * GiB
# Programs whose presence another check decides (the "qemu" check, from qemu_binary).
_DECIDED_BY_OTHER_CHECKS = frozenset({"qemu-system-x86_64"})


class Status(StrEnum):
    ok = "ok"
    warn = "warn"
    fail = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class HostDecision:
    """The little a plan needs from the host check: how L1s run, and on which vendor."""

    accel: Literal["kvm", "tcg"]
    vendor: Literal["intel", "amd", "other"]
    evmcs: bool
    """Whether a Windows L1 gets the eVMCS enlightenment (Intel, and libvirt offers it)."""


@dataclass(frozen=True)
class HostReport:
    """The verdict: which acceleration L1 guests get, and every check behind it."""

    accel: AccelChoice
    vendor: Literal["intel", "amd", "other"]
    evmcs: bool
    """Whether a Windows L1 gets the eVMCS enlightenment (Intel, and libvirt offers it)."""
    checks: tuple[Check, ...]
    stretch: float | None = None
    """Under emulation, how many times longer than one L1 alone the lab's guests take to
    boot and provision here (``emulation_stretch``); None: kvm, no lab, or CPUs unknown."""

    @property
    def can_run(self) -> bool:
        return self.accel != "none" and all(c.status is not Status.fail for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status is Status.fail)

    @property
    def summary(self) -> str:
        if self.accel == "kvm":
            return "L1 guests run under KVM with nested virtualization (kvm)."
        if self.accel == "tcg":
            return (
                "No usable hardware virtualization: L1 guests run under QEMU emulation with "
                "emulated AMD SVM (tcg); a Linux L1 then runs its L2s under KVM. Slow, but real."
            )
        return "This host cannot run L1 guests: neither kvm nor tcg is available."

    def decide(self, lab: str) -> HostDecision:
        """The decision a plan is made from; ``HostCannotRunLab`` when there is none."""
        if not self.can_run or self.accel == "none":
            reasons = "; ".join(f"{c.name}: {c.detail}" for c in self.failures) or self.summary
            raise HostCannotRunLab(
                f"this host cannot run lab {lab!r}: {reasons}",
                hint="`nestlab check` lists the fixes; --facts FILE plans for another host.")
        return HostDecision(accel=self.accel, vendor=self.vendor, evmcs=self.evmcs)


def nested_fix(vendor: str) -> str:
    """The exact commands that turn nesting on for the vendor's KVM module."""
    module = _MODULE.get(vendor, "kvm_intel")
    return (
        f"echo 'options {module} nested=1' | sudo tee /etc/modprobe.d/nestlab-kvm.conf\n"
        f"# then, with no VMs running (or reboot):\n"
        f"sudo modprobe -r {module} && sudo modprobe {module}"
    )


def check_host(facts: HostFacts, lab: Lab | None = None,
               daemon: Daemon = "unused") -> HostReport:
    """Decide the acceleration and list every check, with fixes for what is not ok.

    ``daemon`` says which libvirtd the lab will run in: ``host`` (the one at the
    URI, which must answer), ``sandbox`` (nestlab's own: the host's need only be
    installed) or ``unused`` (nothing runs now: render, plan).
    """
    requested = lab.accel if lab else Accel.auto
    vendor = facts.cpu.vendor
    # Without kvm in the request, a missing kvm prerequisite only costs speed.
    fallback = Status.fail if requested is Accel.kvm else Status.warn
    checks: list[Check] = []

    hw_checks, nesting_ready = _hardware_checks(facts, fallback)
    checks += hw_checks
    libvirt_checks, tcg_ready = _software_checks(facts, daemon)
    checks += libvirt_checks
    checks += _program_checks(facts)

    accel: AccelChoice
    if requested is Accel.tcg:
        accel = "tcg" if tcg_ready else "none"
    elif nesting_ready:
        accel = "kvm"
    elif requested is Accel.kvm:
        accel = "none"
        checks.append(
            Check("accel", Status.fail, "the lab asks for accel: kvm, which this host lacks",
                  "Fix the checks above, or set accel: auto to fall back to emulation.")
        )
    else:
        accel = "tcg" if tcg_ready else "none"

    caps = facts.libvirt.kvm_caps
    evmcs = vendor == "intel" and (
        caps is None or caps.hyperv_features is None or "evmcs" in caps.hyperv_features
    )
    if accel == "kvm":
        checks += _passthrough_checks(facts)
    stretch = None
    if lab is not None:
        checks += _lab_checks(facts, lab, accel, evmcs)
        if accel == "tcg" and facts.cpu.count:
            vcpus = (lab.seats or 1) * seat_vcpus(lab, accel)
            stretch = emulation_stretch(vcpus, facts.cpu.count)
            checks.append(_cost_check(len(lab.hosts) * (lab.seats or 1), vcpus,
                                      facts.cpu.count, stretch))
    return HostReport(accel=accel, vendor=vendor, evmcs=evmcs, checks=tuple(checks),
                      stretch=stretch)


def _hardware_checks(facts: HostFacts, fallback: Status) -> tuple[list[Check], bool]:
    """vmx/svm, /dev/kvm, the vendor module, nested, SLAT. Returns (checks, ready)."""
    vendor, kvm = facts.cpu.vendor, facts.kvm
    flag = next((f for f in ("vmx", "svm") if f in facts.cpu.flags), None)
    enable_virt = (
        "Enable Intel VT-x / AMD-V in the firmware setup. In a cloud or nested VM, "
        "turn on nested virtualization for this instance on the hypervisor below it."
    )
    if flag is None:
        checks = [Check("cpu-virtualization", fallback,
                        f"{facts.cpu.model_name}: the CPU flags show neither vmx nor svm, "
                        "so no hardware virtualization reaches this host", enable_virt)]
        if kvm.device_present:
            checks.append(Check(
                "kvm-device", fallback,
                "/dev/kvm exists, but without vmx/svm in the CPU flags it is a paravirtual "
                "KVM backend that cannot run standard guests (QEMU -accel kvm hangs); "
                "nestlab does not use it"))
        else:
            checks.append(Check("kvm-device", fallback, "/dev/kvm does not exist", enable_virt))
        return checks, False

    checks = [Check("cpu-virtualization", Status.ok,
                    f"{facts.cpu.model_name}: CPU flags include {flag}")]
    module = _MODULE.get(vendor)
    if module is None:
        checks.append(Check("kvm-module", fallback,
                            "CPU vendor is neither Intel nor AMD; nestlab supports only those"))
        return checks, False
    if not kvm.device_present:
        checks.append(Check("kvm-device", fallback, "/dev/kvm does not exist",
                            f"sudo modprobe {module}"))
    elif not kvm.device_openable:
        checks.append(Check("kvm-device", Status.warn,
                            f"/dev/kvm exists but this user cannot open it ({kvm.device_error}); "
                            "libvirt opens it as its own QEMU user, which must be able to",
                            "sudo usermod -aG kvm \"$USER\"   # and log in again"))
    else:
        checks.append(Check("kvm-device", Status.ok, "/dev/kvm exists and opens"))
    if kvm.module != module:
        checks.append(Check("kvm-module", fallback, f"the {module} module is not loaded",
                            f"sudo modprobe {module}"))
        return checks, False
    checks.append(Check("kvm-module", Status.ok, f"{module} is loaded"))

    nested_ok = kvm.nested in _ENABLED
    checks.append(
        Check("nested", Status.ok, f"{module} nested={kvm.nested}")
        if nested_ok
        else Check("nested", fallback,
                   f"{module} nested={kvm.nested}: L1 guests cannot run their own KVM",
                   nested_fix(vendor))
    )
    slat_name = "ept" if vendor == "intel" else "npt"
    slat_ok = kvm.slat in _ENABLED
    checks.append(
        Check("slat", Status.ok, f"{module} {slat_name}={kvm.slat} (SLAT for L1)")
        if slat_ok
        else Check("slat", fallback,
                   f"{module} {slat_name}={kvm.slat}: no second-level address translation; "
                   "Hyper-V refuses to install without it and nested KVM crawls",
                   f"echo 'options {module} {slat_name}=1' | sudo tee -a "
                   "/etc/modprobe.d/nestlab-kvm.conf; then reload the module "
                   "(or the CPU lacks it)")
    )
    libvirt_kvm = not facts.libvirt.reachable or "kvm" in facts.libvirt.domain_types
    if not libvirt_kvm:
        checks.append(Check("libvirt-kvm", fallback,
                            "libvirt does not offer kvm domains on this host",
                            "Check that the QEMU user can open /dev/kvm (group kvm) and "
                            "restart libvirtd."))
    ready = kvm.device_present and nested_ok and slat_ok and libvirt_kvm
    return checks, ready


def _software_checks(facts: HostFacts, daemon: Daemon) -> tuple[list[Check], bool]:
    """libvirt and QEMU. Returns (checks, whether tcg is possible)."""
    lv = facts.libvirt
    checks = []
    if lv.reachable:
        checks.append(Check("libvirt", Status.ok, f"libvirt {lv.version} at {lv.uri}"))
    elif lv.daemon_installed and daemon == "sandbox":
        checks.append(Check("libvirt", Status.ok,
                            "libvirt is installed; the sandbox runs its own libvirtd "
                            f"({lv.uri} does not answer, and is not used)"))
    elif lv.daemon_installed:
        checks.append(Check("libvirt", Status.fail if daemon == "host" else Status.warn,
                            f"libvirt is installed but {lv.uri} does not answer: {lv.error}",
                            "sudo systemctl enable --now libvirtd   "
                            "# or pass --connect URI / set LIBVIRT_DEFAULT_URI, "
                            "or run the lab with --sandbox"))
    else:
        checks.append(Check("libvirt", Status.fail, "libvirt's daemon is not installed",
                            "sudo apt-get install libvirt-daemon-system"))
    if facts.qemu_binary:
        checks.append(Check("qemu", Status.ok, f"{facts.qemu_binary}"))
    else:
        checks.append(Check("qemu", Status.fail, "qemu-system-x86_64 is not installed",
                            "sudo apt-get install qemu-system-x86"))
    tcg_ready = (
        facts.qemu_binary is not None
        and (lv.reachable or lv.daemon_installed)
        and (not lv.reachable or "qemu" in lv.domain_types)
    )
    return checks, tcg_ready


def _program_checks(facts: HostFacts) -> list[Check]:
    """The programs nestlab runs on L0: a missing one that every `up` needs fails, one
    that only the sandbox, image builds, ssh or libvirt's firewall need warns. Facts
    recorded without programs give no verdict."""
    if facts.programs is None:
        return []
    found = facts.programs
    lacking = [p for p in runtime_programs() if p.name in found and found[p.name] is None
               and p.name not in _DECIDED_BY_OTHER_CHECKS]
    for_up = [p for p in lacking if Need.UP in p.needs]
    others = [p for p in lacking if Need.UP not in p.needs]
    checks = [
        Check("programs", Status.fail,
              "missing for every `nestlab up`: " + "; ".join(f"{p.name}: {p.why}"
                                                            for p in for_up),
              install_command(for_up))
        if for_up
        else Check("programs", Status.ok, "the programs `nestlab up` runs are installed")
    ]
    if others:
        checks.append(Check(
            "programs-other", Status.warn,
            "missing: " + "; ".join(
                f"{p.name} for {', '.join(n for n in p.needs if n in RUNTIME_NEEDS)}"
                for p in others),
            install_command(others)))
    return checks


def _vendor_check(facts: HostFacts, evmcs: bool, versions: list[OS]) -> Check:
    """Microsoft supports nested Hyper-V on Intel from Windows Server 2016 on, on AMD from
    2022 on, both with Hyper-V below (docs/windows-versions.md). Under KVM that is no
    promise either way: an older version on AMD is flagged, and every L1 proves itself by
    starting its L2s."""
    if facts.cpu.vendor != "amd":
        return Check("windows-vendor", Status.ok,
                     "Intel host: eVMCS is available to L1" if evmcs else "Intel host")
    unsupported = [v for v in versions if not v.profile.nested_hyperv_on_amd]
    if not unsupported:
        return Check("windows-vendor", Status.ok,
                     f"AMD host: Microsoft supports nested Hyper-V on AMD from Windows Server "
                     f"2022 on ({', '.join(v.profile.product for v in versions)}); nestlab "
                     "still proves it on KVM by starting the L2s, and never enables eVMCS on AMD")
    older = ", ".join(v.profile.product for v in unsupported)
    return Check("windows-vendor", Status.warn,
                 f"AMD host: Hyper-V in a {older} L1 on AMD KVM is unproven (Microsoft "
                 "supports nested Hyper-V on AMD only from Windows Server 2022 on, and no "
                 f"source found shows {older} L2s starting on AMD KVM); nestlab proves it by "
                 "starting the L2s, and never enables eVMCS on AMD",
                 "os: windows-server-2022 is the version Microsoft supports nested on AMD.")


def _passthrough_checks(facts: HostFacts) -> list[Check]:
    caps = facts.libvirt.kvm_caps
    if caps is None:
        return [Check("host-passthrough", Status.warn,
                      "libvirt's domain capabilities could not be read; host-passthrough "
                      "is assumed, not verified")]
    if not caps.host_passthrough:
        return [Check("host-passthrough", Status.fail,
                      "libvirt does not offer host-passthrough CPUs for kvm domains",
                      "Upgrade libvirt/QEMU; nested L1 guests need the host's vmx/svm.")]
    flag = _FLAG.get(facts.cpu.vendor, "vmx")
    detail = "host-passthrough is supported"
    if flag not in caps.host_model_features:
        detail += f" (libvirt's host-model CPU does not list {flag}; it is required explicitly)"
    return [Check("host-passthrough", Status.ok, detail)]


def _lab_checks(facts: HostFacts, lab: Lab, accel: AccelChoice, evmcs: bool) -> list[Check]:
    checks = []
    res = facts.resources
    seats = lab.seats or 1
    whose = ("the L1 hosts" if lab.seats is None else
             f"the L1 hosts of {counted(seats, 'seat')}")
    need_mem = seats * sum(h.memory for h in lab.hosts)
    if need_mem > res.mem_available:
        checks.append(Check("memory", Status.fail,
                            f"{whose} need {human_size(need_mem)}, "
                            f"{human_size(res.mem_available)} is available",
                            "Free memory on the host or lower hosts[].memory in the lab file"
                            + (" (or bring up fewer seats)." if lab.seats else ".")))
    else:
        checks.append(Check("memory", Status.ok,
                            f"{whose} need {human_size(need_mem)} of "
                            f"{human_size(res.mem_available)} available"))
    checks += _cpu_checks(facts, lab, accel)

    need_disk = seats * sum(h.disk + sum(g.disk for g in h.guests) for h in lab.hosts)
    if res.disk_free < _MIN_FREE_DISK:
        checks.append(Check("disk", Status.fail,
                            f"only {human_size(res.disk_free)} free at {res.disk_path}",
                            f"Free at least {human_size(_MIN_FREE_DISK)} there, or set "
                            "NESTLAB_HOME to a larger file system."))
    elif res.disk_free < need_disk:
        checks.append(Check("disk", Status.warn,
                            f"disks are thin, but could grow to {human_size(need_disk)}; "
                            f"{human_size(res.disk_free)} free at {res.disk_path}"))
    else:
        checks.append(Check("disk", Status.ok,
                            f"{human_size(res.disk_free)} free at {res.disk_path}; a baseline "
                            f"or a snapshot keeps each L1's memory too: up to "
                            f"{human_size(need_mem)} each"))

    explicit_cpus = [h.name for h in lab.hosts if h.cpus and h.cpus > 1]
    if accel == "tcg" and explicit_cpus:
        checks.append(Check("tcg-vcpus", Status.warn,
                            f"{', '.join(explicit_cpus)}: more than one vCPU under emulation "
                            "sometimes hangs an L1 at its first KVM use (about 1 run in 10)",
                            "Leave hosts[].cpus unset (1 under tcg) unless you need more."))

    versions = [os for os in OS if os.profile.runs_hyperv and any(h.os is os for h in lab.hosts)]
    if versions:
        checks += _windows_checks(facts, accel, evmcs, versions)
    return checks


def seat_vcpus(lab: Lab, accel: AccelChoice) -> int:
    """The vCPUs of one seat's L1s (the plan's default where the lab file sets none)."""
    return sum(h.cpus or (2 if accel == "kvm" else 1) for h in lab.hosts)


MAX_SEATS_AT_ONCE = 8
"""Even a large host boots no more seats at once: each seat's `up` holds connections,
threads and image copies of its own, and one seat's progress stays readable."""


def seats_at_once(facts: HostFacts, lab: Lab, accel: AccelChoice, pending: int) -> int:
    """How many seats `up` brings up in parallel: as many as the host's CPUs give each
    seat's L1s a CPU per vCPU (booting under emulation keeps each one busy), and its
    available memory holds (the memory check already counted every seat); at least 1,
    at most ``pending`` and ``MAX_SEATS_AT_ONCE``. A host whose CPU count is not known
    brings up one at a time."""
    one_seat = lab.model_copy(update={"seats": None})
    by_cpus = (facts.cpu.count or 0) // max(seat_vcpus(one_seat, accel), 1)
    by_memory = facts.resources.mem_available // max(sum(h.memory for h in lab.hosts), 1)
    return max(1, min(pending, by_cpus, by_memory, MAX_SEATS_AT_ONCE))


def _cpu_checks(facts: HostFacts, lab: Lab, accel: AccelChoice) -> list[Check]:
    """vCPUs of every seat against the host's CPUs: more is allowed (guests share CPUs),
    but under emulation each busy vCPU takes a whole host CPU, so it is said."""
    cpus = facts.cpu.count
    if cpus is None or accel == "none":
        return []
    seats = lab.seats or 1
    need = seats * seat_vcpus(lab, accel)
    whose = ("the L1 hosts" if lab.seats is None else
             f"the L1 hosts of {counted(seats, 'seat')}")
    if need > cpus:
        return [Check("cpus", Status.warn,
                      f"{whose} have {counted(need, 'vCPU')}, the host "
                      f"{counted(cpus, 'CPU')}: they share them and run slower"
                      + (" (`up` brings seats up a few at a time)" if lab.seats else ""))]
    return [Check("cpus", Status.ok, f"{whose} have {counted(need, 'vCPU')} of the host's "
                                     f"{counted(cpus, 'CPU')}")]




_SHARING_COST = 1.4
"""Under emulation a busy vCPU takes a whole host CPU, and sharing costs more than the
share: issue #13 measured 4 L1s (1 vCPU each) on 2 CPUs at 2.7-2.9x one L1's `up`,
where the share alone is 2x. 1.4 x vCPUs per CPU matches it (2.8x)."""


def emulation_stretch(vcpus: int, cpus: int) -> float:
    """How many times longer than one L1 alone its guests' boot and provisioning take
    when ``vcpus`` emulated vCPUs share ``cpus`` host CPUs (at least 1)."""
    return round(max(1.0, _SHARING_COST * vcpus / max(cpus, 1)), 1)


def _cost_check(l1s: int, vcpus: int, cpus: int, stretch: float) -> Check:
    detail = (f"under emulation {counted(l1s, 'L1 host')} ({counted(vcpus, 'vCPU')}) on "
              f"{counted(cpus, 'CPU')}: expect `up` and every guest phase to take about "
              f"{stretch:.1f}x what one L1 alone takes here (measured: 4 L1s on 2 CPUs, "
              "2.7-2.9x)")
    if stretch <= 1.0:
        return Check("cost", Status.ok, detail)
    return Check("cost", Status.warn, detail,
                 "Fewer L1s at once, or a host with more CPUs (or with nested KVM).")


def _windows_checks(facts: HostFacts, accel: AccelChoice, evmcs: bool,
                    versions: list[OS]) -> list[Check]:
    checks = []
    products = ", ".join(v.profile.product for v in versions)
    if accel != "kvm":
        checks.append(Check("windows-accel", Status.fail,
                            f"a Windows L1 with Hyper-V ({products}) needs kvm with nesting; "
                            "under emulation (tcg) Hyper-V would itself run emulated, which is "
                            "not practical (hours per boot) and is not supported",
                            "Run this lab on a host with VT-x/AMD-V and nested KVM "
                            "(see the checks above)."))
        return checks
    checks.append(_vendor_check(facts, evmcs, versions))
    caps = facts.libvirt.kvm_caps
    if caps is None or caps.hyperv_features is None:
        checks.append(Check("hyperv-features", Status.warn,
                            "libvirt does not list its Hyper-V enlightenments (needs libvirt "
                            "9.0 and a reachable daemon); the preset is used unverified"))
    else:
        wanted = {"relaxed", "vapic", "spinlocks", "vpindex", "runtime", "synic", "stimer"}
        missing = sorted(wanted - set(caps.hyperv_features))
        checks.append(
            Check("hyperv-features", Status.ok, "libvirt offers the Hyper-V enlightenments")
            if not missing
            else Check("hyperv-features", Status.warn,
                       f"libvirt does not offer: {', '.join(missing)}",
                       "Upgrade QEMU/libvirt for a Windows L1 that boots reliably.")
        )
    if facts.kvm.hyperv_emulation == "n":
        checks.append(Check("kvm-hyperv", Status.fail,
                            f"kernel {facts.kernel} is built without CONFIG_KVM_HYPERV, which "
                            "Windows and Hyper-V guests on KVM need",
                            "Boot a kernel with CONFIG_KVM_HYPERV=y (the default since 6.8)."))
    firmware = facts.ovmf_files or (caps.firmware if caps else ())
    checks.append(
        Check("ovmf", Status.ok, f"UEFI firmware: {firmware[0]}")
        if firmware
        else Check("ovmf", Status.fail, "no OVMF (UEFI) firmware found; Windows L1s boot UEFI",
                   "sudo apt-get install ovmf")
    )
    return checks
