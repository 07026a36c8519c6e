"""Waiting for something to become true: one helper, with a deadline, an interval, a way
to be cancelled and a note of what the last try saw.

Every wait in nestlab (a guest's SSH or WinRM, an L2's proof, a daemon's socket)
goes through ``wait_for``, so each one names what it waited for when it gives
up, and Ctrl-C in one thread stops the waits of all the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from nestlab.errors import NestlabError

T = TypeVar("T")
Progress = Callable[[str], None]

_sleep = time.sleep  # tests replay waits without waiting


class WaitTimedOut(NestlabError):
    """What was waited for did not happen before the deadline."""


class Cancelled(NestlabError):
    """The wait was cancelled (Ctrl-C, or another part of the same run failed)."""


class NotYet(Exception):
    """Raised by a probe to say "not yet, because ...": always retried."""


def describe(exc: BaseException) -> str:
    """An exception as one short line: its type and, when it has one, its text."""
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float,
    what: str,
    retry_on: tuple[type[BaseException], ...] = (),
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    note_every: float = 10.0,
    hint: str | None = None,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None, then return that.

    A probe may raise ``NotYet(reason)`` to say why not yet. An exception of a
    ``retry_on`` type counts as "not yet" too; either becomes the "last" of the
    timeout message. Any other exception propagates at once. ``progress``
    hears the last reason at most every ``note_every`` seconds. ``cancel`` set
    by another thread ends the wait within one interval with ``Cancelled``.
    """
    started = time.monotonic()
    deadline = started + timeout
    last, last_note = "no answer yet", started
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"{what}: stopped waiting")
        try:
            value = probe()
        except NotYet as exc:
            last = str(exc)
        except retry_on as exc:
            last = describe(exc)
        else:
            if value is not None:
                return value
        now = time.monotonic()
        if now >= deadline:
            raise WaitTimedOut(f"{what}: timed out after {timeout:.0f}s (last: {last})",
                               hint=hint)
        if progress is not None and now - last_note >= note_every:
            progress(last)
            last_note = now
        pause = min(interval, deadline - now)
        if cancel is not None:
            cancel.wait(pause)
        else:
            (sleep or _sleep)(pause)


def hear_within(listen: Callable[[float], bool], seconds: float, cancel: threading.Event,
                progress: Callable[[str], None], what: str, chunk: float = 20.0) -> bool:
    """Whether ``listen`` (which blocks up to the seconds it is given, True once it heard
    what it waits for: an event, not a poll) hears it within ``seconds``; it is called
    ``chunk`` seconds at a time, so that ``progress`` hears ``what`` is awaited and a
    ``cancel`` set by another thread ends the wait (False)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0 and not cancel.is_set():
        if listen(min(left, chunk)):
            return True
        progress(what)
    return False
