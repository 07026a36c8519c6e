"""Phases of a long command: shown as they happen, recorded as JSON lines always.

On a terminal a line carries the seconds since the command started; anywhere
else (CI, ``| tee``, a log file) it carries the UTC time, so a log read later
says when each step ran. One line per event, flushed, never rewritten with
carriage returns. Progress goes to stderr only: stdout is the command's result.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TextIO

from nestlab.state.record import append_event, iso_utc, now

Style = Literal["terminal", "plain", "quiet"]


class ProgressLines:
    """Writes ``guest: message`` lines to stderr, in the style its stream calls for.

    ``terminal``: ``[   12.3s] kvm1: ssh ...``; ``plain`` (stderr is not a
    terminal): ``2026-11-27T21:30:05Z kvm1: ssh ...``; ``quiet``: nothing. A
    stream that can no longer be written (the reader of a pipe went away) ends
    the progress, not the command: the event log still records every step.
    """

    def __init__(self, style: Style | None = None, stream: TextIO | None = None) -> None:
        self._stream = stream
        self.style: Style = style or ("terminal" if self.stream.isatty() else "plain")
        self.started = time.monotonic()
        self._lock = threading.Lock()

    @property
    def stream(self) -> TextIO:
        # Looked up when used: tests and Click's runner swap sys.stderr.
        return self._stream if self._stream is not None else sys.stderr

    def say(self, guest: str, message: str) -> None:
        if self.style == "quiet":
            return
        with self._lock:
            if self.style == "terminal":
                stamp = f"[{time.monotonic() - self.started:7.1f}s]"
            else:
                stamp = iso_utc(time.time())
            try:
                print(f"{stamp} {guest}: {message}", file=self.stream, flush=True)
            except (BrokenPipeError, ValueError):  # a closed pipe, or a closed stream
                self.style = "quiet"


class Step:
    """One running phase; the code doing it sets ``changed`` when it altered anything."""

    def __init__(self) -> None:
        self.changed = False

    def note(self, acted: bool) -> bool:
        """Record what an ``ensure_*`` call returned (True: it had to act); returns it."""
        self.changed = self.changed or acted
        return acted


class Reporter:
    """Times and records the phases of one command run, and shows them as they happen.

    ``show``: None shows progress on stderr in the style its stream calls for
    (``ProgressLines``); False records without showing (``--quiet``, tests).
    """

    def __init__(self, lab: str, lab_dir: Path, command: str, show: bool | None = None,
                 lines: ProgressLines | None = None) -> None:
        self.lab = lab
        self.lab_dir = lab_dir
        self.command = command
        self.run = uuid.uuid4().hex[:12]
        self.lines = lines or ProgressLines("quiet" if show is False else None)
        self.started = self.lines.started
        self.timings: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def say(self, guest: str, message: str) -> None:
        self.lines.say(guest, message)

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
