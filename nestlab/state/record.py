"""A lab's folder on L0: its record, its lock, and its event log.

libvirt stays the truth for what exists; the record only says how to reach
it (URI, sandbox), and the plan (made once, by the first `up`) says what the
lab is, so that status, exec and down never read the lab file again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nestlab.errors import InputError, NestlabError
from nestlab.files import FileProblem, KiB, private_dir, read_bounded_text, write_atomic
from nestlab.state.dataclass_json import dataclass_from_json

if TYPE_CHECKING:
    from nestlab.plan import Plan

MARKER = ".nestlab-lab"
"""Names the lab a folder belongs to; only such a folder is ever purged."""
_RECORD_LIMIT = 64 * KiB
_PLAN_LIMIT = 4 * 1024 * KiB
_EVENTS_LIMIT = 64 * 1024 * KiB


class LabBusy(NestlabError):
    """Another nestlab command holds the lab's lock."""


class NoSuchLab(InputError):
    """No state for the lab: it was never brought up here (or was purged). Exit 2."""


@dataclass(frozen=True)
class LabRecord:
    """How to reach the lab's objects: its libvirt URI, and its sandbox if it has one."""

    lab: str
    lab_file: str
    uri: str
    sandbox: bool
    netns: str | None
    node: str | None = None
    """The node (lab file's ``nodes:`` or ``--node``) the lab is placed on; ``uri`` is that
    node's. None: the host at --connect. A placed lab stays on its node."""


def record_path(lab_dir: Path) -> Path:
    return lab_dir / "lab.json"


def save_record(lab_dir: Path, record: LabRecord) -> None:
    write_atomic(record_path(lab_dir), json.dumps(asdict(record), indent=2) + "\n")


def load_record(lab_dir: Path) -> LabRecord:
    """The lab's record; a missing one is ``NoSuchLab``, a damaged one a ``FileProblem``."""
    path = record_path(lab_dir)
    if not path.exists():
        raise NoSuchLab(f"no such lab {lab_dir.name!r}: it has no state in {lab_dir.parent}",
                        hint="Bring it up with `nestlab up` first.")
    try:
        return dataclass_from_json(
            LabRecord, json.loads(read_bounded_text(path, _RECORD_LIMIT, "lab record")))
    except ValueError as exc:
        raise FileProblem(f"{path}: a damaged lab record: {exc}",
                          hint=f"`nestlab down --lab {lab_dir.name} --purge` removes the lab "
                               "and its state.") from None


PLAN_FORMAT = 1


def plan_path(lab_dir: Path) -> Path:
    return lab_dir / "plan.json"


def save_plan(lab_dir: Path, plan: Plan, lab_file_sha256: str) -> None:
    """The plan every later command loads; made once, from the lab file of that hash."""
    from nestlab.plan import plan_to_json  # the plan's model: not for `status --cached`

    document = {"format": PLAN_FORMAT, "lab_file_sha256": lab_file_sha256,
                "plan": plan_to_json(plan)}
    write_atomic(plan_path(lab_dir), json.dumps(document, indent=2) + "\n")


def load_plan(lab_dir: Path) -> tuple[Plan, str]:
    """(the saved plan, the SHA-256 of the lab file it was made from)."""
    from nestlab.plan import plan_from_json  # the plan's model: not for `status --cached`

    path = plan_path(lab_dir)
    if not path.exists():
        raise NoSuchLab(f"lab {lab_dir.name!r} has no plan in {lab_dir}",
                        hint="`nestlab up` makes it.")
    try:
        document = json.loads(read_bounded_text(path, _PLAN_LIMIT, "lab plan"))
        if not isinstance(document, dict) or document.get("format") != PLAN_FORMAT:
            raise ValueError(f"not format {PLAN_FORMAT}")
        return plan_from_json(document["plan"]), str(document["lab_file_sha256"])
    except (ValueError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
        raise FileProblem(f"{path}: a damaged lab plan ({str(exc).splitlines()[0]})",
                          hint=f"`nestlab down --lab {lab_dir.name}` still works; `up` again "
                               "makes a new plan.") from None


def claim_lab_dir(lab_dir: Path, lab: str) -> None:
    """Create the lab's folder (0700) and mark it as this lab's."""
    private_dir(lab_dir)
    marker = lab_dir / MARKER
    if not marker.exists():
        write_atomic(marker, lab + "\n", mode=0o644)


def is_lab_dir(lab_dir: Path, lab: str) -> bool:
    """Whether ``lab_dir`` is nestlab's folder of ``lab`` (its marker, or its record)."""
    marker = lab_dir / MARKER
    if marker.is_file() and not marker.is_symlink():
        with contextlib.suppress(InputError):
            return read_bounded_text(marker, 256, "lab marker").strip() == lab
    with contextlib.suppress(InputError):
        return load_record(lab_dir).lab == lab
    return False


def require_lab_dir(lab_dir: Path) -> Path:
    """``lab_dir`` if it exists; ``NoSuchLab`` (creating nothing) otherwise."""
    if not lab_dir.is_dir():
        raise NoSuchLab(f"no such lab {lab_dir.name!r} in {lab_dir.parent}",
                        hint="Bring it up with `nestlab up -f LABFILE` first.")
    return lab_dir


@contextlib.contextmanager
def lab_lock(lab_dir: Path, command: str) -> Iterator[None]:
    """Hold the lab's lock; a second command on the same lab is refused at once.

    The lab's folder must exist (``claim_lab_dir``): taking the lock never
    creates a folder. The holder's text is cleared again when the lock is let go.
    """
    lock = lab_dir / "lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            raise LabBusy(f"lab {lab_dir.name!r} is busy: {holder}",
                          hint="Wait for it to finish, or stop it (Ctrl-C), then retry.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"`nestlab {command}` (pid {os.getpid()})\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def append_event(lab_dir: Path, event: dict[str, Any]) -> None:
    """One JSON line per finished phase: lab, guest, phase, start, end, outcome."""
    fd = os.open(lab_dir / "events.jsonl",
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(json.dumps(event, sort_keys=True) + "\n")


def read_events(lab_dir: Path) -> list[dict[str, Any]]:
    path = lab_dir / "events.jsonl"
    if not path.exists():
        return []
    events = []
    text = read_bounded_text(path, _EVENTS_LIMIT, "event log")
    for line in text.splitlines():
        with contextlib.suppress(ValueError):  # a line cut by a crash is skipped
            event = json.loads(line)
            if isinstance(event, dict):
                events.append(event)
    return events


def last_run(events: list[dict[str, Any]], command: str = "up") -> list[dict[str, Any]]:
    """The events of the most recent run of ``command``."""
    runs = [e.get("run") for e in events if e.get("command") == command]
    if not runs:
        return []
    latest = runs[-1]
    return [e for e in events if e.get("run") == latest]


def last_work(events: list[dict[str, Any]], command: str = "up") -> list[dict[str, Any]]:
    """Per step (guest and phase), its event from the run that last did the work, so a
    no-op ``up`` (every step ok in ~0 s) does not hide how long the real one took.

    Only runs since the last ``down`` count, and for each step, in order:
    its latest event if that failed (the step is failing now); else its latest
    ``changed`` event; a step that never changes anything (a wait or a proof:
    ``ssh``, ``proven``) takes its event from the last run that changed or
    failed something for its guest (the run that booted the L1 or started the
    L2), unless it failed there; else its latest event. Steps are in the order
    they first appear.
    """
    downs = [i for i, e in enumerate(events) if e.get("command") == "down"]
    runs = [e for e in events[downs[-1] + 1 if downs else 0:] if e.get("command") == command]
    latest: dict[tuple[Any, Any], dict[str, Any]] = {}
    changed: dict[tuple[Any, Any], dict[str, Any]] = {}
    in_run: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    guest_run: dict[Any, Any] = {}
    for e in runs:
        step = (e.get("guest"), e.get("phase"))
        latest[step] = in_run[(e.get("run"), *step)] = e
        if e.get("outcome") == "changed":
            changed[step] = e
        if e.get("outcome") == "changed" or _failed(e):
            guest_run[e.get("guest")] = e.get("run")
    chosen = []
    for step, last in latest.items():
        from_guest_run = in_run.get((guest_run.get(step[0]), *step))
        if _failed(last) or (step not in changed and (
                from_guest_run is None or _failed(from_guest_run))):
            chosen.append(last)
        else:
            chosen.append(changed.get(step) or from_guest_run or last)
    return chosen


def _failed(event: dict[str, Any]) -> bool:
    return str(event.get("outcome", "")).startswith("failed")


def now() -> float:
    return round(time.time(), 3)


def iso_utc(seconds: float) -> str:
    """A time as people and log tools read it: ``2026-11-27T21:30:05Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
