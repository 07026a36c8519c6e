"""``nestlab image build windows-server-2016 --iso PATH`` (or -2019, -2022): install
Windows unattended from the user's own ISO and keep the generalized disk as a base image.

A transient install domain boots the ISO (Enter is pressed for it at "Press any
key to boot from CD") with an answer medium as a second CD; setup installs,
logs on once, runs build.ps1, which runs sysprep /generalize and powers off.
The powered-off disk is the base. The build's Administrator password exists
only on the answer medium, which is deleted afterwards; every L1 gets its own.
Needs a kvm host: Windows setup under emulation takes hours.

Setup is a black box for 20-40 minutes, so the build keeps what it can see in a
folder that outlives a failed build (``<key>.log`` next to the image): the
guest's serial log, where setup and build.ps1 write markers, and screenshots
(setupwatch.py, virt/screens.py). A failure ends with the step and the last
screenshot's path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import libvirt

from nestlab.build.answerfile import (
    EDITIONS,
    generate_password,
    install_image_name,
    write_install_medium,
)
from nestlab.build.images import (
    BuiltImage,
    ImageBuildError,
    images_root,
    read_manifest,
    write_manifest,
)
from nestlab.build.setupwatch import SetupWatch
from nestlab.build.winiso import check_iso_holds
from nestlab.errors import HostCannotRunLab, NestlabError
from nestlab.files import private_dir
from nestlab.host.check import HostReport
from nestlab.lab.model import GiB
from nestlab.lab.systems import OS, WINDOWS_IMAGES
from nestlab.plan import CpuPlan
from nestlab.render import (
    VNC_PASSWORD_PLACEHOLDER,
    powershell_script,
    render_template,
    template_source,
)
from nestlab.state.keys import key_dir, vnc_password, vnc_password_path
from nestlab.virt.connection import connect
from nestlab.virt.objects import refuses_evmcs
from nestlab.virt.screens import ScreenRecorder
from nestlab.waiting import WaitTimedOut, wait_for

DISK_SIZE = 40 * GiB
BUILD_MEMORY = 4 * GiB
BUILD_CPUS = 2
KEY_ENTER = 28  # Linux keycode
NOTE_EVERY = 60.0
"""How often the build's progress says the step and names the latest screenshot."""
Progress = Callable[[str], None]


@dataclass(frozen=True)
class WindowsBuildPlan:
    """What the install-time domain template needs."""

    name: str
    product: str
    """'Windows Server 2022', as the domain's title says."""
    edition: str
    cpus: int
    memory: int
    disk_path: Path
    iso_path: Path
    answer_path: Path
    serial_log: Path
    """The guest's COM1, where setup and build.ps1 write their markers."""
    cpu: CpuPlan
    evmcs: bool


def image_key(iso: Path, edition: str) -> str:
    """The ISO (name, size, first MiB), the edition and every file the build uses."""
    digest = hashlib.sha256(f"{iso.name}\0{iso.stat().st_size}\0{edition}\0".encode())
    with iso.open("rb") as handle:
        digest.update(handle.read(1 << 20))
    for template in ("windows/autounattend.xml.j2", "windows/_unattend.xml.j2",
                     "domain-windows-install.xml.j2", "_windows.xml.j2"):
        digest.update(template_source(template).encode())
    digest.update(powershell_script("build").encode())
    return digest.hexdigest()[:16]


def build_plan(report: HostReport, key: str, version: OS, edition: str, folder: Path,
               iso: Path, *, logs: Path) -> WindowsBuildPlan:
    flag = "vmx" if report.vendor == "intel" else "svm"
    disable = ("hle", "rtm") if report.vendor == "intel" else ()
    return WindowsBuildPlan(
        name=f"nestlab-build-{version.profile.default_image}-{key[:8]}",
        product=version.profile.product, edition=edition, cpus=BUILD_CPUS,
        memory=BUILD_MEMORY, disk_path=folder / "disk.qcow2", iso_path=iso,
        answer_path=folder / "answer.iso", serial_log=logs / "serial.log",
        cpu=CpuPlan(mode="host-passthrough", model=None, require=(flag,), disable=disable),
        evmcs=report.evmcs)


def build_logs(name: str, key: str) -> Path:
    """A fresh folder for one build's serial log and screenshots, kept when it fails."""
    folder = images_root() / name / f"{key}.log"
    shutil.rmtree(folder, ignore_errors=True)
    return private_dir(folder)


def render_install_domain_xml(plan: WindowsBuildPlan,
                              vnc_password: str = VNC_PASSWORD_PLACEHOLDER) -> str:
    return render_template("domain-windows-install.xml.j2", build=plan,
                           vnc_password=vnc_password)


def build_windows_image(name: str, iso: Path, edition: str, uri: str, report: HostReport,
                        progress: Progress, timeout: float = 3 * 3600) -> tuple[BuiltImage, bool]:
    """Install, generalize and store base image ``name`` (windows-server-2022, ...) from
    the ISO (a no-op when this ISO's is cached)."""
    version = windows_os(name)
    if edition not in EDITIONS:
        raise NestlabError(f"unknown edition {edition!r}; choose {', '.join(EDITIONS)}")
    if not iso.is_file():
        raise NestlabError(f"{iso}: no such ISO file")
    note = check_iso_holds(iso, install_image_name(version, edition))
    if note:
        progress(note)
    if report.accel != "kvm":
        raise HostCannotRunLab("installing Windows needs kvm with nesting; this host offers "
                               f"{report.accel}", hint="`nestlab check` says what is missing.")
    key = image_key(iso, edition)
    final = images_root() / name / key
    cached = read_manifest(final / "manifest.json")
    if cached is not None:
        return cached, False
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{key}.", suffix=".partial", dir=final.parent))
    # mkdtemp makes it 0700; QEMU runs as its own user (qemu:///system) and must enter it
    # to open the disk libvirt gives it: 0711 lets it enter, not list.
    partial.chmod(0o711)
    started = time.monotonic()
    try:
        logs = build_logs(name, key)
        plan = build_plan(report, key, version, edition, partial, iso.resolve(), logs=logs)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(plan.disk_path),
                        str(DISK_SIZE)], check=True)
        write_install_medium(plan.answer_path, version, edition, generate_password())
        _install(plan, uri, progress, timeout)
        plan.answer_path.unlink()
        shutil.rmtree(key_dir(partial))  # the install's VNC password
        image = BuiltImage(name=name, key=key, path=final, kernel=None, initrd=None,
                           disk=final / "disk.qcow2",
                           size=plan.disk_path.stat().st_size,
                           seconds=round(time.monotonic() - started, 1),
                           built=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        write_manifest(partial, image)
        partial.chmod(0o755)
        os.replace(partial, final)
        return image, True
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def windows_os(image: str) -> OS:
    """The Windows Server a base image name stands for (windows-server-2022 -> its OS)."""
    if image not in WINDOWS_IMAGES:
        raise NestlabError(f"{image!r} is not a Windows base image",
                           hint=f"Choose one of: {', '.join(WINDOWS_IMAGES)}.")
    return WINDOWS_IMAGES[image]


def _install(plan: WindowsBuildPlan, uri: str, progress: Progress, timeout: float) -> None:
    conn = connect(uri)
    try:
        # In the build's folder (keys/ is 0700) until the build ends.
        password = vnc_password(plan.disk_path.parent, "install")
        progress("starting the install domain; its screen: VNC on 127.0.0.1 (`virsh "
                 f"vncdisplay`), password in {vnc_password_path(plan.disk_path.parent, 'install')}")
        dom = start_install_domain(conn, plan, password, progress)
        try:
            watch = SetupWatch(dom, plan.serial_log,
                               ScreenRecorder(plan.serial_log.parent / "screens"), progress,
                               _is_active)
            _press_enter_at_boot(dom, seconds=60)
            progress("setup runs unattended; waiting for sysprep to power it off; "
                     f"screenshots in {watch.screens.folder}")
            _wait_until_off(watch, timeout, progress)
        except BaseException:
            if _is_active(dom):
                dom.destroy()
            raise
    finally:
        conn.close()


def start_install_domain(conn: libvirt.virConnect, plan: WindowsBuildPlan, vnc_password: str,
                         progress: Progress) -> libvirt.virDomain:
    """The transient install domain (gone when it powers off); without eVMCS when the host
    refuses it (some Intel hosts without APICv)."""
    try:
        return conn.createXML(render_install_domain_xml(plan, vnc_password), 0)
    except libvirt.libvirtError as exc:
        if not (plan.evmcs and refuses_evmcs(exc)):
            raise ImageBuildError(f"cannot start the install domain: {exc}") from None
    progress("this host refuses eVMCS (Hyper-V's enlightened VMCS): installing without it")
    try:
        return conn.createXML(render_install_domain_xml(dataclasses.replace(plan, evmcs=False),
                                                        vnc_password), 0)
    except libvirt.libvirtError as exc:
        raise ImageBuildError(f"cannot start the install domain: {exc}") from None


def _press_enter_at_boot(dom: libvirt.virDomain, seconds: float) -> None:
    """UEFI boot from the Windows ISO asks to press a key; no key means no install."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and _is_active(dom):
        dom.sendKey(libvirt.VIR_KEYCODE_SET_LINUX, 0, [KEY_ENTER], 1, 0)
        time.sleep(0.5)


def _is_active(dom: libvirt.virDomain) -> bool:
    try:
        return bool(dom.isActive())
    except libvirt.libvirtError:
        return False  # a transient domain that powered off no longer exists


def _wait_until_off(watch: SetupWatch, timeout: float, progress: Progress) -> None:
    """Until sysprep powers the domain off; each poll (every 10 s) also keeps a
    screenshot, and ends the build early when it cannot succeed."""
    try:
        wait_for(watch.poll, timeout=timeout, interval=10,
                 what="Windows setup (waiting for sysprep to power the install domain off)",
                 progress=lambda last: progress(f"still installing: {last}"),
                 note_every=NOTE_EVERY)
    except WaitTimedOut:
        raise watch.failure(f"not done after {timeout / 60:.0f} min",
                            "Next time, watch it live with a VNC viewer on 127.0.0.1 "
                            "(`virsh vncdisplay`).") from None
