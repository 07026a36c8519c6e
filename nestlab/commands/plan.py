"""``nestlab plan``: what ``up`` would do on this host right now, without doing any of it.

The same steps ``up`` runs, each asked only whether it is done: ``present``,
``create`` (up would make or start it), ``unknown`` (inside an L1 that up has
to reach first) or ``skipped``. For a lab that is up, it also lists what the
lab file would change in its saved plan (which ``up`` refuses to mix in).
Nothing is created, started, written or connected to but libvirt, read-only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nestlab import sandbox as sandboxes
from nestlab.build.images import BuiltImage
from nestlab.commands.context import LabContext
from nestlab.commands.up import l0_steps, l1_steps
from nestlab.drivers.base import NotConnected
from nestlab.host.check import HostDecision
from nestlab.lab.model import Lab
from nestlab.plan import make_plan, plan_changes
from nestlab.state.keys import existing_public_key
from nestlab.state.record import LabRecord, load_plan, load_record, plan_path, record_path
from nestlab.steps import Step, step_state

STATES = ("create", "present", "unknown", "skipped")


@dataclass(frozen=True)
class StepPreview:
    guest: str
    step: str
    state: str


@dataclass
class Preview:
    lab: str
    accel: str
    uri: str
    sandbox: bool
    node: str | None = None
    """The node the lab (seat) is placed on; None: the host at ``uri``."""
    steps: list[StepPreview] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    """What the lab file would change in the plan of a lab that is up."""

    def counts(self) -> dict[str, int]:
        return {state: sum(1 for s in self.steps if s.state == state) for state in STATES}

    def to_json(self) -> dict[str, Any]:
        return {"lab": self.lab, "accel": self.accel, "uri": self.uri, "sandbox": self.sandbox,
                "node": self.node,
                "changes": self.changes, "counts": self.counts(),
                "steps": [{"guest": s.guest, "step": s.step, "state": s.state}
                          for s in self.steps]}


def preview(lab: Lab, decision: HostDecision, lab_dir: Path, uri: str,
            want_sandbox: bool, ask_libvirt: bool = True, node: str | None = None) -> Preview:
    """What `up` would do now; the lab keeps the mode (and URI, and node) it was brought
    up with. ``node``: the node a lab not up yet would be placed on, ``uri`` its URI.

    Without a libvirt to ask (``ask_libvirt`` False: a recorded host; or a sandbox
    that is not running) its objects are ``unknown``.
    """
    record = _record(lab, lab_dir, uri, want_sandbox, node)
    plan = make_plan(lab, decision, lab_dir, existing_public_key(lab_dir))
    ctx = LabContext(lab_dir, record, plan)
    result = Preview(lab=lab.name, accel=plan.accel, uri=record.uri, sandbox=record.sandbox,
                     node=record.node)
    if plan_path(lab_dir).exists():
        saved, _hash = load_plan(lab_dir)
        result.changes = plan_changes(saved, plan)
    box = ctx.sandbox
    running = box is None or sandboxes.is_running(box)
    conn = ctx.libvirt() if ask_libvirt and running else None
    try:
        steps: list[Step] = []
        if box is not None:
            steps.append(Step("L0", "sandbox libvirtd", _never,
                              present=lambda: sandboxes.is_running(box)))
        images: dict[str, BuiltImage] = {}
        steps += l0_steps(ctx, conn, images, _quiet)
        for host in plan.hosts:
            steps += l1_steps(ctx, conn, host, images, NotConnected(host.name), [], _quiet,
                              threading.Event())
        result.steps = [StepPreview(s.guest, s.name, step_state(s)) for s in steps]
    finally:
        if conn is not None:
            conn.close()
    return result


def _record(lab: Lab, lab_dir: Path, uri: str, want_sandbox: bool,
            node: str | None) -> LabRecord:
    if record_path(lab_dir).exists():
        return load_record(lab_dir)
    box = sandboxes.Sandbox(lab.name, lab_dir / "sandbox") if want_sandbox else None
    return LabRecord(lab=lab.name, lab_file="", uri=box.uri if box else uri,
                     sandbox=box is not None, netns=box.netns if box else None, node=node)


def _never() -> bool:
    raise AssertionError("nestlab plan acted")


def _quiet(_guest: str, _message: str) -> None:
    pass

