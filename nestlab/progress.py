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

from nestlab.state import append_event, now


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
    def phase(self, guest: str, phase: str) -> Iterator[None]:
        """Time a phase; record it with its outcome even when it fails."""
        start = now()
        self.say(guest, f"{phase} ...")
        outcome = "ok"
        try:
            yield
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
            if outcome == "ok":
                self.say(guest, f"{phase} done in {end - start:.1f}s")
