"""Work for several things started at once, each waited for on its own.

`up` is a sequence of steps, one per image or L2; some of those steps wait
mostly on something else (a build's downloads, an L2's boot). ``Together``
lets the first such step start the work of all of them at once, so the later
steps find theirs done or under way instead of starting it in turn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Together(Generic[K, V]):
    """``work(key)`` for every key, all started by the first ``result``; each ``result``
    waits for its own key (its error is raised there, the others go on)."""

    def __init__(self, keys: Iterable[K], work: Callable[[K], V], name: str) -> None:
        self._keys = list(dict.fromkeys(keys))
        self._work = work
        self._name = name
        self._started: dict[K, Future[V]] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the work of every key now, without waiting for any (``result`` waits)."""
        with self._lock:
            if self._started is None:
                self._started = self._start()

    def result(self, key: K) -> V:
        self.start()
        assert self._started is not None
        if key not in self._started:
            raise KeyError(f"{key!r} is not one of the {self._name} started together")
        return self._started[key].result()

    def _start(self) -> dict[K, Future[V]]:
        if not self._keys:
            return {}
        pool = ThreadPoolExecutor(max_workers=len(self._keys), thread_name_prefix=self._name)
        started = {key: pool.submit(self._work, key) for key in self._keys}
        pool.shutdown(wait=False)  # the threads end with their work
        return started
