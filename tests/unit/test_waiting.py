"""The one wait helper: deadline, interval, cancel, and what the last try saw."""

from __future__ import annotations

import threading
import time

import pytest

from nestlab.waiting import Cancelled, NotYet, WaitTimedOut, wait_for


def test_returns_the_first_value_that_is_not_none() -> None:
    answers = iter([None, None, "ready"])
    assert wait_for(lambda: next(answers), timeout=5, interval=0.01, what="x") == "ready"


def test_a_timeout_names_what_and_the_last_reason() -> None:
    def probe() -> None:
        raise NotYet("port 22 refused")

    with pytest.raises(WaitTimedOut, match=r"kvm1: SSH: timed out after 0s \(last: port 22 "
                                           r"refused\)") as info:
        wait_for(probe, timeout=0.05, interval=0.01, what="kvm1: SSH", hint="look at it")
    assert info.value.hint == "look at it"


def test_retry_on_counts_as_not_yet_and_anything_else_propagates() -> None:
    tries = iter([ConnectionRefusedError("refused"), ValueError("a bug")])

    def probe() -> None:
        raise next(tries)

    with pytest.raises(ValueError, match="a bug"):
        wait_for(probe, timeout=5, interval=0.01, what="x", retry_on=(OSError,))


def test_progress_hears_the_reason_at_most_every_note_every() -> None:
    heard: list[str] = []

    def probe() -> None:
        raise NotYet("booting")

    with pytest.raises(WaitTimedOut):
        wait_for(probe, timeout=0.3, interval=0.01, what="x", progress=heard.append,
                 note_every=0.1)
    assert 1 <= len(heard) <= 4 and set(heard) == {"booting"}


def test_cancel_ends_the_wait_within_one_interval() -> None:
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled, match="x: stopped waiting"):
        wait_for(lambda: None, timeout=60, interval=0.05, what="x", cancel=cancel)
    assert time.monotonic() - started < 2
