"""Several commands in one round trip, and a session that answers reads from such a batch.

A command on an L1 costs a round trip (an SSH channel, a process in an emulated
guest). `up` on a lab that is up asks each L1 a dozen "is it done?" questions;
asked one after another they were most of its time. ``batch_script`` runs them
all in one shell, ``parse_batch`` splits the output back into one result per
command, and ``RememberedReads`` gives the steps those answers as if they had
asked themselves, until they change anything.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from nestlab.transport.base import CommandResult, Transport, TransportError


def batch_script(argvs: Sequence[list[str]], mark: str) -> str:
    """A POSIX shell script that runs each command (stdin closed) and prints, for each,
    ``MARK STATUS OUT_BYTES ERR_BYTES`` on a line of its own, then its stdout and stderr
    bytes exactly. Lengths, not separators: a command may print anything."""
    lines = ['d=$(mktemp -d) || exit 125', "trap 'rm -rf \"$d\"' EXIT"]
    for argv in argvs:
        lines.append(f'{shlex.join(argv)} >"$d/o" 2>"$d/e" </dev/null; s=$?')
        lines.append(f"printf '%s %s %s %s\\n' {mark} $s $(wc -c <\"$d/o\") "
                     f"$(wc -c <\"$d/e\"); cat \"$d/o\" \"$d/e\"")
    return "\n".join(lines) + "\n"


def parse_batch(output: bytes, argvs: Sequence[list[str]], mark: str,
                guest: str) -> list[CommandResult]:
    """The results of ``batch_script``'s commands, in order; a missing or malformed part
    (the shell died half-way) is a ``TransportError``."""
    results, at = [], 0
    for argv in argvs:
        end = output.find(b"\n", at)
        head = output[at:end].decode(errors="replace").split() if end >= 0 else []
        if len(head) != 4 or head[0] != mark or not all(f.isdigit() for f in head[1:]):
            raise TransportError(f"{guest}: a batch of commands ended early, at "
                                 f"`{shlex.join(argv)}`")
        status, out_len, err_len = (int(f) for f in head[1:])
        out = output[end + 1:end + 1 + out_len]
        err = output[end + 1 + out_len:end + 1 + out_len + err_len]
        at = end + 1 + out_len + err_len
        results.append(CommandResult(shlex.join(argv), status, out.decode(errors="replace"),
                                     err.decode(errors="replace")))
    return results


class RememberedReads(Transport):
    """A session whose answers to some commands were fetched earlier in one batch
    (``fetch``). Such a command is answered from the batch, with no round trip, until
    anything else goes to the guest (a command not in the batch, a file, a reconnect):
    from then on every command goes to the guest, so a step that acted reads what it
    did, never an answer from before. The batch must hold only commands that change
    nothing."""

    def __init__(self, session: Transport) -> None:
        self.name = session.name
        self._session = session
        self._answers: dict[tuple[str, ...], CommandResult] = {}
        self._lock = threading.Lock()

    def fetch(self, argvs: Sequence[list[str]], timeout: float = 600.0) -> None:
        """Run ``argvs`` in one round trip and keep their answers."""
        unique = list(dict.fromkeys(tuple(a) for a in argvs))
        results = self._session.run_batch([list(a) for a in unique], timeout)
        with self._lock:
            self._answers = dict(zip(unique, results, strict=True))

    def forget(self) -> None:
        with self._lock:
            self._answers = {}

    def run(self, argv: list[str], timeout: float = 600.0) -> CommandResult:
        with self._lock:
            remembered = self._answers.get(tuple(argv))
            if remembered is None:
                self._answers = {}
        if remembered is not None:
            return remembered
        return self._session.run(argv, timeout)

    def run_batch(self, argvs: Sequence[list[str]], timeout: float = 600.0
                  ) -> list[CommandResult]:
        self.forget()
        return self._session.run_batch(argvs, timeout)

    def put(self, local: Path, remote: str) -> None:
        self.forget()
        self._session.put(local, remote)

    def put_text(self, text: str, remote: str, mode: int = 0o644) -> None:
        self.forget()
        self._session.put_text(text, remote, mode)

    def wait_until_reachable(self, timeout: float, waiting: Callable[[str], None] | None = None,
                             cancel: threading.Event | None = None) -> None:
        self._session.wait_until_reachable(timeout, waiting, cancel)

    def reconnect(self, timeout: float) -> None:
        self.forget()
        self._session.reconnect(timeout)

    def close(self) -> None:
        self._session.close()
