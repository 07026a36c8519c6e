"""``nestlab up``: make the lab real, step by step, each step skipped when already done.

Order: host check, sandbox (optional), keys, images, L0 networks, then per L1
(in parallel): disk, define + start, SSH (or WinRM), provisioning, and proof
that each L2 booted (its own SSH answers through the L1). Each phase reports
whether it changed anything.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import libvirt

from nestlab import sandbox as sandboxes
from nestlab.answerfile import l1_password
from nestlab.errors import NestlabError
from nestlab.hostcheck import check_host
from nestlab.hostfacts import HostFacts
from nestlab.images import BuiltImage, build_image
from nestlab.labctx import LabContext
from nestlab.labkeys import ensure_lab_key
from nestlab.model import Lab
from nestlab.plan import GuestPlan, HostPlan, Plan, make_plan, plan_changes
from nestlab.progress import Reporter
from nestlab.provision import linux, windows
from nestlab.render import render_domain_xml, render_network_xml
from nestlab.state import (
    LabRecord,
    claim_lab_dir,
    lab_lock,
    load_plan,
    load_record,
    plan_path,
    record_path,
    save_plan,
    save_record,
)
from nestlab.transport.ssh import SSHTransport
from nestlab.virt import disks, objects
from nestlab.waiting import Cancelled

FactsReader = Callable[[str], HostFacts]


@dataclass(frozen=True)
class Timeouts:
    ssh: float
    l2: float
    windows_boot: float = 1800  # first boot after sysprep: specialize, OOBE, a reboot
    windows_reboot: float = 1200

    @classmethod
    def for_accel(cls, accel: str) -> Timeouts:
        # Under emulation an L1 boots to SSH in ~30-40 s; allow for a loaded machine.
        return cls(ssh=600, l2=300) if accel == "tcg" else cls(ssh=300, l2=180)


@dataclass(frozen=True)
class Proof:
    """What shows an L2 is really up, in the words of the check that showed it."""

    guest: str
    l1: str
    address: str
    evidence: str


def up(lab: Lab, lab_file: Path, lab_dir: Path, uri: str, want_sandbox: bool,
       read_facts: FactsReader, reporter: Reporter) -> list[Proof]:
    """Bring the lab up (or continue it); returns one proof per L2.

    ``reporter`` counts the phases that changed something: a second ``up`` on a
    lab that is up reports 0 changed.
    """
    box = _sandbox_for(lab, lab_dir, want_sandbox)
    # In a sandbox its libvirtd is not started yet: the host's facts decide.
    report = check_host(read_facts(uri), lab, "sandbox" if box else "host")
    decision = report.decide(lab.name)  # refuses a host that cannot run the lab
    claim_lab_dir(lab_dir, lab.name)
    if box is None:
        lab_dir.chmod(_HOST_MODE_FOLDER)  # QEMU runs as its own user and must reach the disks
    with lab_lock(lab_dir, "up"):
        plan = make_plan(lab, decision, lab_dir, ensure_lab_key(lab_dir))
        _refuse_a_changed_lab(lab_dir, plan, lab_file)
        # Recorded before anything else exists, so that `down` can always clean up.
        record = LabRecord(lab=lab.name, lab_file=str(lab_file.resolve()),
                           uri=box.uri if box else uri, sandbox=box is not None,
                           netns=box.netns if box else None)
        save_record(lab_dir, record)
        save_plan(lab_dir, plan, lab_hash(lab))
        ctx = LabContext(lab_dir, record, plan)
        if box is not None:
            with reporter.phase("L0", "sandbox libvirtd") as step:
                step.note(sandboxes.start(box))
        conn = ctx.libvirt()
        try:
            objects.refuse_foreign_names(conn, lab.name, [n.name for n in ctx.plan.networks],
                                         [h.domain_name for h in ctx.plan.hosts])
            images = _images(lab, reporter)
            with reporter.phase("L0", "networks") as step:
                for net in ctx.plan.networks:
                    step.note(objects.ensure_network(conn, lab.name, net.name,
                                                     render_network_xml(ctx.plan, net)))
            return _bring_up_hosts(ctx, conn, images, reporter)
        finally:
            conn.close()


_HOST_MODE_FOLDER = 0o711
"""Lab folders are 0700, but where QEMU runs as its own user (no sandbox) it must be
able to enter them to open the disks: 0711 lets it enter, not list. Every file in
them is 0600, and libvirt gives the disk itself to QEMU's user while it runs."""


def _bring_up_hosts(ctx: LabContext, conn: libvirt.virConnect, images: dict[str, BuiltImage],
                    reporter: Reporter) -> list[Proof]:
    """All L1s in parallel. A failure or Ctrl-C in one stops the others' waits."""
    cancel = threading.Event()

    def bring_up(host: HostPlan) -> list[Proof]:
        try:
            return _bring_up_host(ctx, conn, host, images, reporter, cancel)
        except BaseException:
            cancel.set()  # the lab cannot be proven: the other L1s stop waiting
            raise

    proofs: list[Proof] = []
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=len(ctx.plan.hosts)) as pool:
        futures = [pool.submit(bring_up, host) for host in ctx.plan.hosts]
        try:
            for future in futures:
                try:
                    proofs.extend(future.result())
                except Exception as exc:  # collected; raised below once all have stopped
                    errors.append(exc)
        except KeyboardInterrupt:
            cancel.set()
            raise
    real = [e for e in errors if not isinstance(e, Cancelled)] or errors
    if not real:
        return proofs
    if len(real) == 1 or not all(isinstance(e, NestlabError) for e in real):
        raise next((e for e in real if not isinstance(e, NestlabError)), real[0])
    raise NestlabError("; ".join(e.message for e in real if isinstance(e, NestlabError)),
                       hint="`nestlab up` again continues where this one stopped.")


class LabChanged(NestlabError):
    """The lab file no longer describes the lab that is up."""


def lab_hash(lab: Lab) -> str:
    """A hash of what the lab file says (comments and layout do not count)."""
    return hashlib.sha256(lab.model_dump_json().encode()).hexdigest()


def _refuse_a_changed_lab(lab_dir: Path, plan: Plan, lab_file: Path) -> None:
    """A lab is continued only from the plan it was made with: a lab file that says
    something else is refused with what would change, never mixed in silently."""
    if not plan_path(lab_dir).exists():
        return
    saved, _saved_hash = load_plan(lab_dir)
    changes = plan_changes(saved, plan)
    if changes:
        shown = changes[:20] + ([f"... and {len(changes) - 20} more"] if len(changes) > 20
                                else [])
        raise LabChanged(
            f"lab {plan.lab} is up from another version of {lab_file}; up would change:\n  "
            + "\n  ".join(shown),
            hint=f"Restore the lab file, or take the lab down (`nestlab down --lab {plan.lab}`)"
                 " and bring it up again from this one.")


def _sandbox_for(lab: Lab, lab_dir: Path, want: bool) -> sandboxes.Sandbox | None:
    """A lab keeps the mode it was first brought up in."""
    if record_path(lab_dir).exists():
        had = load_record(lab_dir).sandbox
        if had != want:
            mode = "with --sandbox" if had else "without --sandbox"
            raise NestlabError(f"lab {lab.name} was brought up {mode}; continue it the same way",
                               hint=f"Or take it down first: nestlab down --lab {lab.name}")
    return sandboxes.Sandbox(lab.name, lab_dir / "sandbox") if want else None


def _images(lab: Lab, reporter: Reporter) -> dict[str, BuiltImage]:
    names = sorted({h.base_image for h in lab.hosts} | {
        g.image for h in lab.hosts for g in h.guests})
    images = {}
    for name in names:
        with reporter.phase("L0", f"image {name}"):
            images[name], _built = build_image(name, _image_progress(reporter, name))
    return images


def _image_progress(reporter: Reporter, name: str) -> Callable[[str], None]:
    return lambda step: reporter.say("L0", f"image {name}: {step}")


def _bring_up_host(ctx: LabContext, conn: libvirt.virConnect, host: HostPlan,
                   images: dict[str, BuiltImage], reporter: Reporter,
                   cancel: threading.Event) -> list[Proof]:
    plan, timeouts = ctx.plan, Timeouts.for_accel(ctx.plan.accel)
    base = images[host.base_image]
    with reporter.phase(host.name, "disk") as step:
        step.note(disks.ensure_host_dir(host, 0o700 if ctx.record.sandbox
                                        else _HOST_MODE_FOLDER))
        step.note(disks.ensure_overlay(host, base))
        if host.os.is_windows:
            step.note(disks.ensure_answer_medium(host, l1_password(ctx.lab_dir, host.name)))
        else:
            step.note(disks.ensure_boot_files(host, base))
            step.note(disks.ensure_seed(host, plan.public_key or ""))
            step.note(disks.ensure_console_log(host))
    with reporter.phase(host.name, "define + start") as step:
        dom, defined = objects.ensure_domain(conn, plan.lab, host.domain_name,
                                             render_domain_xml(plan, host))
        step.note(defined)
        step.note(objects.start_domain(dom))
    if host.os.is_windows:
        return _provision_windows(ctx, host, images, reporter, timeouts, cancel)
    # The L1's address is reserved by MAC on its first network: no need to wait for the
    # lease, SSH answering is the proof that it booted.
    l1 = ctx.l1_transport(host)
    try:
        with reporter.phase(host.name, "ssh"):
            l1.wait_until_reachable(timeouts.ssh, lambda why: reporter.say(
                host.name, f"waiting for SSH ({why})"), cancel)
        linux.provision(l1, plan, host, images, reporter)
        return [_prove(ctx, l1, host, guest, timeouts.l2, reporter, cancel)
                for guest in host.guests]
    finally:
        l1.close()


def _prove(ctx: LabContext, l1: SSHTransport, host: HostPlan, guest: GuestPlan, timeout: float,
           reporter: Reporter, cancel: threading.Event) -> Proof:
    with reporter.phase(guest.name, "proven (SSH via " + host.name + ")"):
        l2 = ctx.l2_transport(l1, guest)
        try:
            l2.wait_until_reachable(timeout, lambda why: reporter.say(
                guest.name, f"waiting for SSH through {host.name} ({why})"), cancel)
            kernel = l2.check(["uname", "-r"]).stdout.strip()
            uptime = float(l2.check(["cat", "/proc/uptime"]).stdout.split()[0])
        finally:
            l2.close()
    return Proof(guest=guest.name, l1=host.name, address=str(guest.ip),
                 evidence=f"its SSH answered through {host.name}: kernel {kernel}, "
                          f"up {uptime:.1f}s")


def _saying(reporter: Reporter, guest: str, doing: str) -> Callable[[str], None]:
    return lambda why: reporter.say(guest, f"{doing}: {why}")


def _provision_windows(ctx: LabContext, host: HostPlan, images: dict[str, BuiltImage],
                       reporter: Reporter, timeouts: Timeouts,
                       cancel: threading.Event) -> list[Proof]:
    """WinRM, the Hyper-V role, the L2 network and L2s from per-L2 prime ISOs."""
    t = ctx.windows_transport(host)
    try:
        with reporter.phase(host.name, "winrm"):
            t.wait_until_reachable(timeouts.windows_boot, lambda why: reporter.say(
                host.name, f"waiting for WinRM ({why})"), cancel)
        isos = {}
        for guest in host.guests:
            isos[guest.name] = disks.ensure_prime_iso(
                host, guest, images[guest.image], ctx.plan.public_key or "")
        windows.provision(t, host, isos, reporter, timeouts.windows_reboot)
        proofs = []
        for guest in host.guests:
            with reporter.phase(guest.name, f"proven (Hyper-V in {host.name})"):
                seen = windows.prove(t, host, guest, timeouts.l2,
                                     _saying(reporter, guest.name, "waiting for it"))
            proofs.append(Proof(guest=guest.name, l1=host.name, address=seen.address,
                                evidence=f"Hyper-V says {seen.state}, heartbeat {seen.heartbeat}"
                                         f"; its SSH port answers inside {host.name}"))
        return proofs
    finally:
        t.close()
