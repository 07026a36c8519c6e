"""A lab's folder on L0: its record, its lock, and its event log.

libvirt stays the truth for what exists; the record only says how to reach
it (URI, sandbox) and how the lab was planned (accel), so that status, exec
and down work without the lab file's host check being run again.
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
from typing import Any, Literal

from nestlab.errors import NestlabError


class LabBusy(NestlabError):
    """Another nestlab command holds the lab's lock."""


class NoSuchLab(NestlabError):
    """No state for the lab: it was never brought up here (or was purged)."""


@dataclass(frozen=True)
class LabRecord:
    lab: str
    lab_file: str
    uri: str
    sandbox: bool
    netns: str | None
    accel: Literal["kvm", "tcg"]
    vendor: Literal["intel", "amd", "other"]
    evmcs: bool


def record_path(lab_dir: Path) -> Path:
    return lab_dir / "lab.json"


def save_record(lab_dir: Path, record: LabRecord) -> None:
    lab_dir.mkdir(parents=True, exist_ok=True)
    tmp = record_path(lab_dir).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2) + "\n")
    os.replace(tmp, record_path(lab_dir))


def load_record(lab_dir: Path) -> LabRecord:
    try:
        return LabRecord(**json.loads(record_path(lab_dir).read_text()))
    except FileNotFoundError:
        raise NoSuchLab(f"lab {lab_dir.name!r} has no state in {lab_dir.parent}",
                        hint="Bring it up with `nestlab up` first.") from None


@contextlib.contextmanager
def lab_lock(lab_dir: Path, command: str) -> Iterator[None]:
    """Hold the lab's lock; a second command on the same lab is refused at once."""
    lab_dir.mkdir(parents=True, exist_ok=True)
    lock = lab_dir / "lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock.read_text().strip() or "another process"
            raise LabBusy(f"lab {lab_dir.name!r} is busy: {holder}",
                          hint="Wait for it to finish, or stop it (Ctrl-C), then retry.") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"`nestlab {command}` (pid {os.getpid()})\n".encode())
        yield
    finally:
        os.close(fd)


def append_event(lab_dir: Path, event: dict[str, Any]) -> None:
    """One JSON line per finished phase: lab, guest, phase, start, end, outcome."""
    with (lab_dir / "events.jsonl").open("a") as handle:
        handle.write(json.dumps(event, sort_keys=True) + "\n")


def read_events(lab_dir: Path) -> list[dict[str, Any]]:
    path = lab_dir / "events.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line cut by a crash is skipped
            events.append(json.loads(line))
    return events


def last_run(events: list[dict[str, Any]], command: str = "up") -> list[dict[str, Any]]:
    """The events of the most recent run of ``command``."""
    runs = [e.get("run") for e in events if e.get("command") == command]
    if not runs:
        return []
    latest = runs[-1]
    return [e for e in events if e.get("run") == latest]


def now() -> float:
    return round(time.time(), 3)
