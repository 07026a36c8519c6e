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
    """A POSIX shell script that runs each command (stdin closed, stdout and stderr each
    to a file of their own) and prints ``MARK STATUS`` on a line as each ends; after the
    last, the byte sizes of all those files, one per line (one `stat`), then all their
    bytes (one `cat`). Lengths, not separators: a command may print anything. The
    script's own processes are four whatever the number of commands: each costs ~50 ms
    in an emulated L1, where three per command were most of a batch's time."""
    outputs = " ".join(f'"$d/{i}o" "$d/{i}e"' for i in range(len(argvs)))
    lines = ['d=$(mktemp -d) || exit 125', "trap 'rm -rf \"$d\"' EXIT"]
    for i, argv in enumerate(argvs):
        lines.append(f'{shlex.join(argv)} >"$d/{i}o" 2>"$d/{i}e" </dev/null; '
                     f"printf '%s %s\\n' {mark} $?")
    if argvs:
        lines.append(f"stat -c %s {outputs} && cat {outputs}")
    return "\n".join(lines) + "\n"


def parse_batch(output: bytes, argvs: Sequence[list[str]], mark: str,
                guest: str) -> list[CommandResult]:
    """The results of ``batch_script``'s commands, in order; a missing or malformed part
    (the shell died half-way) is a ``TransportError``."""
    lines = output.split(b"\n", 3 * len(argvs))
    statuses = []
    for line in lines[:len(argvs)]:
        head = line.decode(errors="replace").split()
        if len(head) != 2 or head[0] != mark or not head[1].isdigit():
            break
        statuses.append(int(head[1]))
    if len(statuses) < len(argvs):
        raise TransportError(f"{guest}: a batch of commands ended early, at "
                             f"`{shlex.join(argvs[len(statuses)])}`")
    sizes = lines[len(argvs):3 * len(argvs)]
    if len(lines) <= 3 * len(argvs) or not all(s.isdigit() for s in sizes):
        raise TransportError(f"{guest}: a batch of commands ended before its output")
    outputs, at = [], 0
    rest = lines[-1]
    for size in map(int, sizes):
        outputs.append(rest[at:at + size].decode(errors="replace"))
        at += size
    if at != len(rest):
        raise TransportError(f"{guest}: a batch of commands ended before its output")
    return [CommandResult(shlex.join(argv), status, outputs[2 * i], outputs[2 * i + 1])
            for i, (argv, status) in enumerate(zip(argvs, statuses, strict=True))]


class RememberedReads(Transport):
    """A session whose answers to some commands were fetched earlier in one batch
    (``fetch``). Such a command is answered from the batch, with no round trip, until
    anything else goes to the guest (a command not in the batch, a reconnect): from then
    on every command goes to the guest, so a step that acted reads what it did, never an
    answer from before. A file put there changes that file alone: only the answers of
    commands that name its path are forgotten. A step that read again after it acted,
    in the same command, may say so (``remember``). The batch must hold only commands
    that change nothing."""

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

    def remember(self, argv: list[str], result: CommandResult) -> None:
        """``result`` is what ``argv`` answers now (read after the last change, by the
        command that made it): answer ``argv`` with it until the next change."""
        with self._lock:
            self._answers[tuple(argv)] = result

    def _forget_naming(self, path: str) -> None:
        with self._lock:
            self._answers = {argv: result for argv, result in self._answers.items()
                             if not any(path in arg for arg in argv)}

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
        self._forget_naming(remote)
        self._session.put(local, remote)

    def put_text(self, text: str, remote: str, mode: int = 0o644) -> None:
        self._forget_naming(remote)
        self._session.put_text(text, remote, mode)

    def wait_until_reachable(self, timeout: float, waiting: Callable[[str], None] | None = None,
                             cancel: threading.Event | None = None) -> None:
        self._session.wait_until_reachable(timeout, waiting, cancel)

    def reconnect(self, timeout: float) -> None:
        self.forget()
        self._session.reconnect(timeout)

    def close(self) -> None:
        self._session.close()
