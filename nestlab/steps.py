"""`up` as data: a sequence of named steps, each able to say whether it is done and to do
it. The same steps, asked only whether they are done, are what `nestlab plan` shows.

A step's ``ensure`` does what is missing and returns True when it changed anything
(``ok`` or ``changed`` in the report); its ``present`` answers, without acting,
whether it is done (None: it cannot tell without acting, e.g. inside an L1 that
is not running yet). A step with ``skip`` set is reported and not run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nestlab.progress import Reporter


@dataclass(frozen=True)
class Step:
    guest: str
    """Whom it is about: ``L0``, an L1 or an L2, by name."""
    name: str
    ensure: Callable[[], bool]
    present: Callable[[], bool | None] | None = None
    skip: str | None = None
    """Why this step does not apply (shown as ``skipped``)."""


def run_steps(steps: Sequence[Step], reporter: Reporter) -> None:
    """Run steps in order; each is timed and recorded as ok, changed, skipped or failed."""
    for step in steps:
        if step.skip is not None:
            reporter.skipped(step.guest, step.name, step.skip)
            continue
        with reporter.phase(step.guest, step.name) as phase:
            phase.note(step.ensure())


def step_state(step: Step) -> str:
    """What `plan` says of a step: present, create, unknown or skipped."""
    if step.skip is not None:
        return "skipped"
    answer = step.present() if step.present is not None else None
    if answer is None:
        return "unknown"
    return "present" if answer else "create"
