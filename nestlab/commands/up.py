"""``nestlab up``: make the lab real as a sequence of named steps, each done only when
it is not done already.

L0: the sandbox (optional), the images, the L0 networks; then per L1, in
parallel: its disk, define + start, reaching it (SSH or WinRM), the steps its
driver gives (hypervisor, L2 network, L2s), and proof that each L2 runs. Each
step reports ok, changed, skipped or failed; `nestlab plan` shows the same
steps without acting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import libvirt

from nestlab import sandbox as sandboxes
from nestlab.build.images import BuiltImage, ConcurrentBuilds, find_image
from nestlab.commands.changes import LabChanged, Restarts, changes_to_apply
from nestlab.commands.context import LabContext
from nestlab.commands.nodes import node_refusal
from nestlab.commands.status import seen_after_up
from nestlab.drivers import Proof, driver_class, driver_for
from nestlab.errors import InputError, NestlabError
from nestlab.host.check import check_host
from nestlab.host.facts import HostFacts
from nestlab.lab.model import Lab
from nestlab.plan import HostPlan, Plan, make_plan
from nestlab.progress import Reporter
from nestlab.render import render_network_xml
from nestlab.state.keys import ensure_lab_key
from nestlab.state.record import (
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
from nestlab.state.seen import save_seen
from nestlab.steps import Step, run_steps
from nestlab.together import Together
from nestlab.transport.base import Transport
from nestlab.virt import disks, nodefiles, objects
from nestlab.virt.connection import LibvirtError
from nestlab.waiting import Cancelled

__all__ = ["LabChanged", "Proof", "bring_back_host", "bring_back_hosts", "bring_up_host",
           "l0_steps", "l1_steps", "lab_hash", "up"]

FactsReader = Callable[[str], HostFacts]


def up(lab: Lab, lab_file: Path, lab_dir: Path, uri: str, want_sandbox: bool,
       read_facts: FactsReader, reporter: Reporter,
       cancel: threading.Event | None = None, node: str | None = None) -> list[Proof]:
    """Bring the lab up (or continue it); returns one proof per L2.

    ``reporter`` counts the steps that changed something: a second ``up`` on a
    lab that is up reports 0 changed. ``cancel``, once set, stops the L1s' waits
    (Ctrl-C reaches a seat's ``up`` this way: it runs outside the main thread).
    ``node``: the node the lab is placed on (``commands.nodes``), whose URI ``uri`` is.
    """
    box = _sandbox_for(lab, lab_dir, want_sandbox)
    _refuse_another_node(lab, lab_dir, uri, node)
    # In a sandbox its libvirtd is not started yet: the host's facts decide.
    report = check_host(read_facts(uri), lab, "sandbox" if box else "host")
    decision = report.decide(lab.name)  # refuses a host that cannot run the lab
    claim_lab_dir(lab_dir, lab.name)
    if box is None:
        lab_dir.chmod(_HOST_MODE_FOLDER)  # QEMU runs as its own user and must reach the disks
    with lab_lock(lab_dir, "up"):
        plan = make_plan(lab, decision, lab_dir, ensure_lab_key(lab_dir))
        restarts = _restarts(lab_dir, plan, lab_file)
        # Recorded before anything else exists, so that `down` can always clean up.
        record = LabRecord(lab=lab.name, lab_file=str(lab_file.resolve()),
                           uri=box.uri if box else uri, sandbox=box is not None,
                           netns=box.netns if box else None, node=node)
        save_record(lab_dir, record)
        if not restarts.guests:
            save_plan(lab_dir, plan, lab_hash(lab))
        for reason in restarts.reasons:
            reporter.say("L0", f"applying the lab file: {reason}")
        ctx = LabContext(lab_dir, record, plan, redefine=restarts.guests)
        images: dict[str, BuiltImage] = {}
        if box is not None:
            run_steps([Step("L0", "sandbox libvirtd", partial(sandboxes.start, box))], reporter)
        conn = ctx.libvirt()
        try:
            objects.refuse_foreign_names(conn, lab.name, [n.name for n in plan.networks],
                                         [h.domain_name for h in plan.hosts])
            run_steps(l0_steps(ctx, conn, images, reporter.say), reporter)
            proofs = _bring_up_hosts(ctx, conn, images, reporter, cancel or threading.Event())
        finally:
            conn.close()
        if restarts.guests:
            # Saved only once applied: an `up` cut short applies the changes again.
            save_plan(lab_dir, plan, lab_hash(lab))
        save_seen(lab_dir, seen_after_up(ctx))  # `status --cached` shows it at once
        return proofs


def l0_steps(ctx: LabContext, conn: libvirt.virConnect | None, images: dict[str, BuiltImage],
             say: Callable[[str, str], None]) -> list[Step]:
    """The images (into ``images``) and the L0 networks. ``conn`` None: a sandbox that
    is not running yet, where nothing exists."""
    plan = ctx.plan
    names = sorted({h.base_image for h in plan.hosts} | {
        g.image for h in plan.hosts for g in h.guests})
    builds = ConcurrentBuilds(names, lambda name, step: say("L0", f"image {name}: {step}"))
    steps = [Step("L0", f"image {name}", partial(_ensure_image, builds, name, images),
                  present=partial(lambda n: find_image(n) is not None, name))
             for name in names]
    if nodefiles.needs_copies(ctx.record.uri, ctx.record.node):
        steps += [Step("L0", f"image {name} on node {ctx.record.node}",
                       partial(lambda n: nodefiles.push_files(
                           conn, nodefiles.image_files(images[n])), name),
                       present=partial(nodefiles.image_present, conn, name))
                  for name in sorted({h.base_image for h in plan.hosts})]
    for net in plan.networks:
        steps.append(Step(
            "L0", f"network {net.name}",
            partial(_ensure_network, conn, plan.lab, net.name, render_network_xml(plan, net)),
            present=partial(_network_present, conn, plan.lab, net.name)))
    return steps


def _ensure_image(builds: ConcurrentBuilds, name: str, images: dict[str, BuiltImage]) -> bool:
    images[name], built = builds.result(name)
    return built


def _ensure_network(conn: libvirt.virConnect | None, lab: str, name: str, xml: str) -> bool:
    assert conn is not None
    return objects.ensure_network(conn, lab, name, xml)


def _network_present(conn: libvirt.virConnect | None, lab: str, name: str) -> bool | None:
    """None (unknown) without a libvirt to ask."""
    return None if conn is None else objects.network_active(conn, lab, name)


_HOST_MODE_FOLDER = 0o711
"""Lab folders are 0700, but where QEMU runs as its own user (no sandbox) it must be
able to enter them to open the disks: 0711 lets it enter, not list. Every file in
them is 0600, and libvirt gives the disk itself to QEMU's user while it runs."""


def bring_up_host(ctx: LabContext, conn: libvirt.virConnect, host: HostPlan,
                  images: dict[str, BuiltImage], reporter: Reporter,
                  cancel: threading.Event) -> list[Proof]:
    """One L1 through its steps, from its disk to its L2s proven; on failure ``cancel``
    is set, so that the other L1s stop waiting (the lab cannot be proven)."""
    driver = driver_for(ctx, host)
    session = driver.session(host)
    proofs: list[Proof] = []
    try:
        run_steps(l1_steps(ctx, conn, host, images, session, proofs, reporter.say, cancel),
                  reporter)
        return proofs
    except BaseException:
        cancel.set()
        raise
    finally:
        session.close()


def bring_back_host(ctx: LabContext, host: HostPlan, reporter: Reporter) -> list[Proof]:
    """One L1 of a lab that is up, through up's own steps (L0's images and networks
    first, each found done): how `restart` and `rebuild` end, so that what they leave
    is what `up` would."""
    conn = ctx.libvirt()
    try:
        images: dict[str, BuiltImage] = {}
        run_steps(l0_steps(ctx, conn, images, reporter.say), reporter)
        return bring_up_host(ctx, conn, host, images, reporter, threading.Event())
    finally:
        conn.close()


def bring_back_hosts(ctx: LabContext, reporter: Reporter) -> list[Proof]:
    """Every L1 of a lab that is up through up's own steps, all at once: how `reset` and
    `snapshot save|restore` end (each step that finds its work done changes nothing)."""
    conn = ctx.libvirt()
    try:
        images: dict[str, BuiltImage] = {}
        run_steps(l0_steps(ctx, conn, images, reporter.say), reporter)
        return _bring_up_hosts(ctx, conn, images, reporter, threading.Event())
    finally:
        conn.close()


def _bring_up_hosts(ctx: LabContext, conn: libvirt.virConnect, images: dict[str, BuiltImage],
                    reporter: Reporter, cancel: threading.Event) -> list[Proof]:
    """All L1s in parallel. A failure or Ctrl-C in one stops the others' waits."""
    proofs: list[Proof] = []
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=len(ctx.plan.hosts)) as pool:
        futures = [pool.submit(bring_up_host, ctx, conn, host, images, reporter, cancel)
                   for host in ctx.plan.hosts]
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


def l1_steps(ctx: LabContext, conn: libvirt.virConnect | None, host: HostPlan,
             images: dict[str, BuiltImage], session: Transport, proofs: list[Proof],
             say: Callable[[str, str], None], cancel: threading.Event) -> list[Step]:
    """One L1 from its disk to its L2s proven (the proofs go into ``proofs``)."""
    driver = driver_for(ctx, host)
    plan = ctx.plan

    def disk() -> bool:
        base = images[host.base_image]
        acted = disks.ensure_host_dir(host, 0o700 if ctx.record.sandbox else _HOST_MODE_FOLDER)
        acted = disks.ensure_overlay(host, base) or acted
        return driver.ensure_boot_media(host, base) or acted

    def define_and_start() -> bool:
        assert conn is not None
        xml = driver.domain_xml(host)
        if host.name in ctx.redefine:
            say(host.name, "redefined from the lab file: restarting it")
            dom, defined = objects.redefine_domain(conn, plan.lab, host.domain_name, xml), True
        else:
            dom, defined = objects.ensure_domain(conn, plan.lab, host.domain_name, xml)
        try:
            done = objects.start_domain(dom)
        except LibvirtError as exc:
            if not (host.evmcs and objects.refuses_evmcs(exc)):
                raise
            say(host.name, "this host refuses eVMCS (Hyper-V's enlightened VMCS): starting "
                           "it without; Hyper-V runs, its L2s a little slower")
            xml = driver.domain_xml(dataclasses.replace(host, evmcs=False))
            dom, defined = objects.redefine_domain(conn, plan.lab, host.domain_name, xml), True
            done = objects.start_domain(dom)
        if done == "resumed":
            say(host.name, "it was paused: resumed")
        return done is not None or defined

    def reach() -> bool:
        # The L1's address is reserved by MAC: no need to wait for its lease; the service
        # answering is the proof that it booted. An L1 that announces it is ready (a
        # Linux L1, on its console) is tried once it has, else (or when the announcement
        # does not come: an L1 whose disk predates it) tried until it answers.
        boot = driver.timeouts().boot
        with driver.watch_boot(host, conn) as watch:
            watch.await_ready(boot * _ANNOUNCED_WITHIN, cancel, lambda why: say(
                host.name, f"{why}{watch.note()}"))
            session.wait_until_reachable(boot, lambda why: say(
                host.name, f"waiting for {driver.reach_phase.upper()} ({why}){watch.note()}"),
                cancel)
        return False

    def prove_one(guest_name: str) -> Proof:
        guest = next(g for g in host.guests if g.name == guest_name)
        return driver.prove(host, session, guest, say, cancel)

    # Every L2 of the L1 is started by now: the first proof step starts them all, each
    # waits in its own thread (through the one session), each step reports its own.
    proving = Together([g.name for g in host.guests], prove_one, f"prove-{host.name}")

    def prove(guest_name: str) -> bool:
        proofs.append(proving.result(guest_name))
        return False

    steps = [
        Step(host.name, "disk", disk, present=host.disk_path.exists),
        *([Step(host.name, f"files on node {ctx.record.node}",
                lambda: nodefiles.push_files(conn, nodefiles.host_files(host)),
                present=lambda: nodefiles.files_present(conn, nodefiles.host_files(host)))]
          if nodefiles.needs_copies(ctx.record.uri, ctx.record.node) else []),
        Step(host.name, "define + start", define_and_start,
             present=partial(_domain_running, conn, host.domain_name)),
        Step(host.name, driver.reach_phase, reach),
        *driver.provision_steps(host, session, images, say),
    ]
    steps += [Step(guest.name, driver.proof_phase(host), partial(prove, guest.name))
              for guest in host.guests]
    return steps


_ANNOUNCED_WITHIN = 1 / 3
"""The share of an L1's boot timeout that `up` waits for it to announce it is ready
before it tries to reach it anyway."""


def _domain_running(conn: libvirt.virConnect | None, name: str) -> bool | None:
    return None if conn is None else objects.domain_running(conn, name)


def lab_hash(lab: Lab) -> str:
    """A hash of what the lab file says (comments and layout do not count)."""
    return hashlib.sha256(lab.model_dump_json().encode()).hexdigest()


def _restarts(lab_dir: Path, plan: Plan, lab_file: Path) -> Restarts:
    """What this `up` changes in a lab that is up (``LabChanged`` for what it cannot)."""
    if not plan_path(lab_dir).exists():
        return Restarts(frozenset(), ())
    saved, _saved_hash = load_plan(lab_dir)
    return changes_to_apply(saved, plan, lab_file,
                            lambda host: driver_class(host).redefines_guests)


def _refuse_another_node(lab: Lab, lab_dir: Path, uri: str, node: str | None) -> None:
    """A lab placed on a node stays there (same node, same URI), and a lab brought up at
    --connect is not moved onto a node, nor the reverse: exit 2. (``up --sandbox`` with
    nodes is refused before: ``commands.nodes.refuse_this_host_options``.)"""
    refusal = node_refusal(lab, uri, node)
    if refusal is not None:
        raise refusal
    if not record_path(lab_dir).exists():
        return
    had = load_record(lab_dir)
    if (had.node is not None or node is not None) and (had.node, had.uri) != (node, uri):
        was = f"node {had.node}" if had.node else "this host"
        now = f"node {node} ({uri})" if node else f"{uri}, not on a node"
        raise InputError(f"lab {lab.name} runs on {was} ({had.uri}); it cannot continue on "
                         f"{now}", hint=f"Take it down first: nestlab down --lab {lab.name}")


def _sandbox_for(lab: Lab, lab_dir: Path, want: bool) -> sandboxes.Sandbox | None:
    """A lab keeps the mode it was first brought up in."""
    if record_path(lab_dir).exists():
        had = load_record(lab_dir).sandbox
        if had != want:
            mode = "with --sandbox" if had else "without --sandbox"
            raise NestlabError(f"lab {lab.name} was brought up {mode}; continue it the same way",
                               hint=f"Or take it down first: nestlab down --lab {lab.name}")
    return sandboxes.Sandbox(lab.name, lab_dir / "sandbox") if want else None


