"""Phases of a long command: shown on a terminal, recorded as JSON lines always."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nestlab.state.record import append_event, now


class Step:
    """One running phase; the code doing it sets ``changed`` when it altered anything."""

    def __init__(self) -> None:
        self.changed = False

    def note(self, acted: bool) -> bool:
        """Record what an ``ensure_*`` call returned (True: it had to act); returns it."""
        self.changed = self.changed or acted
        return acted


class Reporter:
    """Prints ``[  12.3s] guest: phase`` lines on a terminal; quiet otherwise."""

    def __init__(self, lab: str, lab_dir: Path, command: str, show: bool | None = None) -> None:
        self.lab = lab
        self.lab_dir = lab_dir
        self.command = command
        self.run = uuid.uuid4().hex[:12]
        self.show = sys.stderr.isatty() if show is None else show
        self.started = time.monotonic()
        self.timings: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def say(self, guest: str, message: str) -> None:
        if self.show:
            with self._lock:
                elapsed = time.monotonic() - self.started
                print(f"[{elapsed:7.1f}s] {guest}: {message}", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def phase(self, guest: str, phase: str) -> Iterator[Step]:
        """Time a phase; record it with its outcome (ok, changed, failed) even when it fails."""
        start = now()
        self.say(guest, f"{phase} ...")
        step = Step()
        outcome = "ok"
        try:
            yield step
            outcome = "changed" if step.changed else "ok"
        except BaseException as exc:
            outcome = f"failed: {type(exc).__name__}"
            raise
        finally:
            end = now()
            event = {"lab": self.lab, "guest": guest, "phase": phase, "start": start,
                     "end": end, "seconds": round(end - start, 1), "outcome": outcome,
                     "command": self.command, "run": self.run}
            with self._lock:
                self.timings.append(event)
                append_event(self.lab_dir, event)
            if not outcome.startswith("failed"):
                self.say(guest, f"{phase} {outcome} in {end - start:.1f}s")

    def skipped(self, guest: str, phase: str, why: str) -> None:
        """Record a phase that does not apply, with why."""
        at = now()
        event = {"lab": self.lab, "guest": guest, "phase": phase, "start": at, "end": at,
                 "seconds": 0.0, "outcome": "skipped", "why": why, "command": self.command,
                 "run": self.run}
        with self._lock:
            self.timings.append(event)
            append_event(self.lab_dir, event)
        self.say(guest, f"{phase} skipped: {why}")

    def counts(self) -> dict[str, int]:
        """How many phases of this run ended changed, ok, skipped and failed."""
        with self._lock:
            outcomes = [t["outcome"].split(":")[0] for t in self.timings]
        return {kind: outcomes.count(kind) for kind in ("changed", "ok", "skipped", "failed")}

    def summary(self) -> str:
        """One line for the end of a run: ``3 changed, 11 ok``."""
        counts = self.counts()
        text = f"{counts['changed']} changed, {counts['ok']} ok"
        for extra in ("skipped", "failed"):
            text += f", {counts[extra]} {extra}" if counts[extra] else ""
        return text
