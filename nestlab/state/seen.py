"""What `status` (or `up`) last saw of a lab, kept in its folder as ``status.json``.

`status --cached` answers from it at once (``cached_status``), without asking libvirt
or any L1, and says how old it is. libvirt stays the truth: this is only the last
thing it said, with the time it said it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nestlab.errors import NestlabError
from nestlab.files import FileProblem, KiB, read_bounded_text, write_atomic
from nestlab.state.dataclass_json import dataclass_from_json
from nestlab.state.record import last_work, load_record, read_events, require_lab_dir

SEEN_FORMAT = 1
_SEEN_LIMIT = 1024 * KiB


@dataclass(frozen=True)
class NetworkSeen:
    name: str
    state: str
    """active, inactive, absent, unknown."""


@dataclass(frozen=True)
class L2Seen:
    name: str
    domain: str
    """The name the L1's hypervisor knows it by."""
    address: str
    state: str
    """As the L1's hypervisor says it (running, paused, shut off...), absent, or unknown
    while its L1 is not running or does not answer."""


@dataclass(frozen=True)
class L1Seen:
    name: str
    domain: str
    os: str
    state: str
    """As libvirt on L0 says it (running, paused, shut off...), absent, or booting: libvirt
    runs it but it does not answer yet."""
    address: str | None
    """Its reserved address while its domain runs; None when it does not."""
    guests: tuple[L2Seen, ...]
    note: str | None = None
    """Why its L2s are unknown, when it says more than its state."""


@dataclass(frozen=True)
class SandboxSeen:
    netns: str
    running: bool


@dataclass(frozen=True)
class LabSeen:
    """The whole lab as seen at one moment, and who looked."""

    lab: str
    accel: str
    uri: str
    sandbox: SandboxSeen | None
    networks: tuple[NetworkSeen, ...]
    hosts: tuple[L1Seen, ...]
    at: float
    """When it was seen (seconds since the epoch)."""
    by: str
    """``status`` (it asked) or ``up`` (what a successful `up` had just made and proven)."""
    node: str | None = None
    """The node the lab is placed on (None: the host at ``uri``)."""
    unanswered: str | None = None
    """Why the lab's libvirt (its node's) did not answer; its objects are then unknown."""


class NothingSeen(NestlabError):
    """No status is recorded for the lab yet."""


def seen_path(lab_dir: Path) -> Path:
    return lab_dir / "status.json"


def save_seen(lab_dir: Path, seen: LabSeen) -> None:
    """Record what was seen (atomically, 0600): the next `status --cached` shows it."""
    document = {"format": SEEN_FORMAT, "seen": asdict(seen)}
    write_atomic(seen_path(lab_dir), json.dumps(document, indent=1) + "\n")


def load_seen(lab_dir: Path) -> LabSeen:
    """The last recorded status; ``NothingSeen`` when there is none, a ``FileProblem``
    naming the file when it is damaged."""
    path = seen_path(lab_dir)
    if not path.exists():
        raise NothingSeen(f"lab {lab_dir.name!r} has no recorded status yet",
                          hint="`nestlab status` without --cached asks libvirt and the L1s, "
                               "and records what it sees.")
    try:
        document = json.loads(read_bounded_text(path, _SEEN_LIMIT, "recorded status"))
        if not isinstance(document, dict) or document.get("format") != SEEN_FORMAT:
            raise ValueError(f"not format {SEEN_FORMAT}")
        return dataclass_from_json(LabSeen, document["seen"])
    except (ValueError, KeyError) as exc:
        raise FileProblem(f"{path}: a damaged recorded status ({str(exc).splitlines()[0]})",
                          hint="`nestlab status` without --cached records a new one.") from None


def forget_seen(lab_dir: Path) -> None:
    """A lab taken down has nothing left to show."""
    seen_path(lab_dir).unlink(missing_ok=True)


@dataclass(frozen=True)
class LabStatus:
    """What ``status`` shows: what was seen, whether it was asked now, and the timings."""

    seen: LabSeen
    live: bool
    age: float
    """Seconds since it was seen (asking now: how long asking took)."""
    timings: list[dict[str, Any]]


def cached_status(lab_dir: Path) -> LabStatus:
    """What the last `status` or `up` recorded, without asking libvirt or any L1."""
    load_record(require_lab_dir(lab_dir))  # a lab that is not up is NoSuchLab, as live
    seen = load_seen(lab_dir)
    return LabStatus(seen, live=False, age=max(time.time() - seen.at, 0.0),
                     timings=phase_timings(lab_dir))


def phase_timings(lab_dir: Path) -> list[dict[str, Any]]:
    """Per step, its time in the `up` that last did the work (``last_work``): a later `up`
    that had nothing to do does not hide how long booting took."""
    return [
        {"guest": e["guest"], "phase": e["phase"], "seconds": e["seconds"],
         "outcome": e["outcome"], "run": e.get("run"), "end": e.get("end")}
        for e in last_work([e for e in read_events(lab_dir) if _is_step(e)], "up")
    ]


def _is_step(event: dict[str, Any]) -> bool:
    """A line of the event log that can be shown (the log is read back from a file)."""
    return (all(isinstance(event.get(k), str) for k in ("guest", "phase", "outcome"))
            and isinstance(event.get("seconds"), int | float))
