"""``nestlab ls``: the labs on this host, read from their folders alone.

Every folder under the labs root that is marked as a lab (``record.is_lab_dir``)
is listed: ``up`` while it has a record (from its first ``up`` until ``down``),
``down`` otherwise; what it holds comes from its saved plan, when it was last
brought up from its events; a lab named as a seat is (``course-s01``) says whose.
Nothing asks libvirt (``status`` does, for one lab),
so the list is quick and works while a sandbox is stopped. State that cannot be
read is listed as ``damaged``, with why: one bad folder must not hide the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nestlab.errors import InputError, NestlabError
from nestlab.plan import Plan
from nestlab.state.paths import SEATED_NAME_MAX, lab_dir, labs_root
from nestlab.state.record import (
    LabRecord,
    NoSuchLab,
    is_lab_dir,
    last_run,
    load_plan,
    load_record,
    read_events,
)

LabState = Literal["up", "down", "damaged"]


@dataclass(frozen=True)
class LabSummary:
    name: str
    state: LabState
    sandbox: bool | None = None
    uri: str | None = None
    accel: str | None = None
    l1s: int | None = None
    l2s: int | None = None
    last_up: float | None = None
    """When the last `up` ended (its last step), seconds since the epoch."""
    last_up_outcome: Literal["ok", "failed"] | None = None
    problem: str | None = None
    """Why the lab is damaged, or what else could not be read (its events)."""
    seat_of: str | None = None
    """The lab this one is a seat of (its name is ``<seat_of>-sNN``), and which seat."""
    seat: int | None = None
    node: str | None = None
    """The node it is placed on (its ``uri`` is that node's)."""


def list_labs(root: Path | None = None) -> list[LabSummary]:
    """Every lab under the labs root (``root``: the data root, for tests), by name."""
    labs = labs_root(root)
    try:
        entries = sorted(labs.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise NestlabError(f"cannot list the labs in {labs}: {exc.strerror}",
                           hint="Labs brought up as root are listed by `sudo nestlab ls`."
                           ) from None
    summaries = []
    for entry in entries:
        folder = _lab_folder(entry, root)
        if folder is not None:
            summaries.append(_summarize(folder))
    return summaries


def _lab_folder(entry: Path, root: Path | None) -> Path | None:
    """The entry as a lab's folder; None for anything else (a stray file, a folder that
    is not marked as a lab, a name no lab can have, a symlink out of the labs root)."""
    try:
        folder = lab_dir(entry.name, root)
    except InputError:
        return None
    try:
        return folder if folder.is_dir() and is_lab_dir(folder, entry.name) else None
    except OSError:  # a folder this user cannot read: listed as damaged, not hidden
        return folder


def _summarize(folder: Path) -> LabSummary:
    name = folder.name
    seat = _seat(name)
    try:
        record = _record(folder)
        plan = _plan(folder, record)
    except (InputError, OSError) as exc:
        return LabSummary(name, "damaged", problem=_first_line(exc), **seat)
    if plan is None:
        return LabSummary(name, "down", **seat)  # claimed by an `up` stopped before its plan
    last_up, outcome, problem = _last_up(folder)
    return LabSummary(
        name, "up" if record else "down",
        sandbox=record.sandbox if record else None, uri=record.uri if record else None,
        node=record.node if record else None,
        accel=plan.accel, l1s=len(plan.hosts), l2s=sum(len(h.guests) for h in plan.hosts),
        last_up=last_up, last_up_outcome=outcome, problem=problem, **seat)


_SEAT_NAME = re.compile(r"(?P<lab>[a-z]([a-z0-9-]*[a-z0-9])?)-s(?P<seat>\d\d)")


def _seat(name: str) -> dict[str, Any]:
    """``seat_of`` and ``seat`` for a lab named as a seat is (``seat_lab_name``)."""
    match = _SEAT_NAME.fullmatch(name)
    if match is None or len(match["lab"]) > SEATED_NAME_MAX or int(match["seat"]) < 1:
        return {}
    return {"seat_of": match["lab"], "seat": int(match["seat"])}


def _record(folder: Path) -> LabRecord | None:
    """The lab's record, None when it is down; a record of another lab is damage."""
    try:
        record = load_record(folder)
    except NoSuchLab:
        return None
    if record.lab != folder.name:
        raise InputError(f"its record is lab {record.lab!r}'s")
    return record


def _plan(folder: Path, record: LabRecord | None) -> Plan | None:
    """The saved plan; None for a lab that is down and never got one. A lab that is up
    has one (`up` saves it right after the record), and names itself in it."""
    try:
        plan, _lab_file_hash = load_plan(folder)
    except NoSuchLab:
        if record is None:
            return None
        raise InputError("it has a record but no plan.json (an `up` stopped before making "
                         "it; `up` again makes it)") from None
    if plan.lab != folder.name:
        raise InputError(f"its plan is lab {plan.lab!r}'s")
    return plan


def _last_up(folder: Path) -> tuple[float | None, Literal["ok", "failed"] | None, str | None]:
    """(when the last `up` ended, whether a step of it failed, what could not be read)."""
    try:
        run = last_run(read_events(folder), "up")
    except InputError as exc:
        return None, None, _first_line(exc)
    ends = [e["end"] for e in run if isinstance(e.get("end"), int | float)]
    if not ends:
        return None, None, None
    failed = any(str(e.get("outcome", "")).startswith("failed") for e in run)
    return max(ends), "failed" if failed else "ok", None


def _first_line(exc: Exception) -> str:
    text = exc.message if isinstance(exc, NestlabError) else str(exc)
    return text.splitlines()[0] if text else type(exc).__name__

