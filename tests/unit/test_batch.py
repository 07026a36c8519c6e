"""Several commands in one round trip (nestlab/transport/batch.py): the script runs in a
real POSIX shell here, and the session that answers reads from a batch."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import paramiko
import pytest

from nestlab.transport.base import CommandResult, Transport, TransportError
from nestlab.transport.batch import RememberedReads, batch_script, parse_batch
from nestlab.transport.ssh import SSHTransport

MARK = "nestlab-0123456789abcdef"


def run_locally(argvs: Sequence[list[str]]) -> list[CommandResult]:
    out = subprocess.run(["sh", "-c", batch_script(argvs, MARK)], capture_output=True,
                         check=True).stdout
    return parse_batch(out, argvs, MARK, "here")


def test_each_command_gets_its_own_status_stdout_and_stderr() -> None:
    argvs = [["printf", "one\ntwo\n"], ["sh", "-c", "echo out; echo err >&2; exit 3"],
             ["test", "-c", "/nonexistent"], ["printf", ""],
             ["printf", f"{MARK} 0 1 1\nnot a header"], ["cat"],
             ["nestlab-no-such-program"], ["echo", "it's $HOME; `x`"]]
    results = run_locally(argvs)
    assert [(r.exit_status, r.stdout, r.stderr) for r in results[:6]] == [
        (0, "one\ntwo\n", ""), (3, "out\n", "err\n"), (1, "", ""), (0, "", ""),
        (0, f"{MARK} 0 1 1\nnot a header", ""), (0, "", "")]  # cat: stdin is closed
    assert results[6].exit_status == 127 and "nestlab-no-such-program" in results[6].stderr
    assert results[7].stdout == "it's $HOME; `x`\n"  # arguments quoted, never expanded
    assert [r.command for r in results][1] == "sh -c 'echo out; echo err >&2; exit 3'"


def test_a_batch_cut_short_is_an_error_not_fewer_results() -> None:
    argvs = [["echo", "a"], ["echo", "b"]]
    out = subprocess.run(["sh", "-c", batch_script(argvs, MARK)], capture_output=True,
                         check=True).stdout
    with pytest.raises(TransportError, match="ended early, at `echo b`"):
        parse_batch(out[:out.rindex(MARK.encode())], argvs, MARK, "here")
    with pytest.raises(TransportError, match="ended early"):
        parse_batch(out, argvs, "nestlab-another-mark", "here")


def test_a_batch_whose_outputs_are_cut_short_is_an_error() -> None:
    argvs = [["printf", "abc"], ["printf", "de"]]
    out = subprocess.run(["sh", "-c", batch_script(argvs, MARK)], capture_output=True,
                         check=True).stdout
    assert [r.stdout for r in parse_batch(out, argvs, MARK, "here")] == ["abc", "de"]
    for cut in (out[:-1], out[:out.rindex(b"abcde")], out + b"x"):
        with pytest.raises(TransportError, match="ended before its output"):
            parse_batch(cut, argvs, MARK, "here")


def test_a_batch_starts_the_same_few_processes_however_many_commands_it_has(
        tmp_path: Path) -> None:
    """Each process costs ~50 ms in an emulated L1: the script's own (mktemp, stat, cat,
    rm) must not be started again for each command. Each program the script may start is
    wrapped here to log its name."""
    log = tmp_path / "started"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("mktemp", "stat", "cat", "rm", "wc", "head", "tail", "dd"):
        real = shutil.which(program)
        assert real, program
        wrapper = bin_dir / program
        wrapper.write_text(f'#!/bin/sh\necho {program} >>"{log}"\nexec {real} "$@"\n')
        wrapper.chmod(0o755)
    argvs = [["test", "-e", "/"] for _ in range(12)]
    shell = shutil.which("sh")  # found here: the PATH the script runs with has only wrappers
    assert shell
    out = subprocess.run([shell, "-c", batch_script(argvs, MARK)], capture_output=True,
                         check=True, env={**os.environ, "PATH": str(bin_dir)}).stdout
    assert [r.exit_status for r in parse_batch(out, argvs, MARK, "here")] == [0] * 12
    assert sorted(log.read_text().split()) == ["cat", "mktemp", "rm", "stat"]


class Recorder(Transport):
    """Answers every command with its own text, and records what reached it."""

    def __init__(self) -> None:
        self.name = "l1"
        self.sent: list[str] = []

    def run(self, argv: list[str], timeout: float = 600.0) -> CommandResult:
        self.sent.append(" ".join(argv))
        return CommandResult(" ".join(argv), 0, f"{len(self.sent)}", "")

    def run_batch(self, argvs: Sequence[list[str]], timeout: float = 600.0
                  ) -> list[CommandResult]:
        self.sent.append("batch")
        return [CommandResult(" ".join(a), 0, f"batched {' '.join(a)}", "") for a in argvs]

    def put(self, local: Path, remote: str) -> None:
        self.sent.append(f"put {remote}")

    def put_text(self, text: str, remote: str, mode: int = 0o644) -> None:
        self.sent.append(f"put {remote}")

    def wait_until_reachable(self, timeout: float, waiting: Callable[[str], None] | None = None,
                             cancel: threading.Event | None = None) -> None:
        pass

    def reconnect(self, timeout: float) -> None:
        pass

    def close(self) -> None:
        pass


def test_reads_come_from_the_batch_until_anything_else_is_sent() -> None:
    session = Recorder()
    reads = RememberedReads(session)
    reads.fetch([["state", "a"], ["state", "b"], ["state", "a"]])
    assert session.sent == ["batch"]
    assert reads.run(["state", "a"]).stdout == "batched state a"
    assert reads.run(["state", "b"]).stdout == "batched state b"
    assert reads.run(["state", "a"]).stdout == "batched state a"  # asked again: same answer
    assert session.sent == ["batch"]
    reads.run(["start", "a"])  # not a read of the batch: it goes out, and the batch is old
    assert reads.run(["state", "a"]).stdout == "3"
    assert session.sent == ["batch", "start a", "state a"]


@pytest.mark.parametrize("act", [
    lambda reads: reads.put_text("x", "/d/f"),
    lambda reads: reads.put(Path("/dev/null"), "/d/f"),
    lambda reads: reads.reconnect(1),
])
def test_a_file_or_a_reconnect_makes_the_batch_old(act: Callable[[RememberedReads], None]
                                                     ) -> None:
    session = Recorder()
    reads = RememberedReads(session)
    reads.fetch([["sha256sum", "/d/f"]])
    act(reads)
    assert reads.run(["sha256sum", "/d/f"]).stdout != "batched sha256sum /d/f"


@pytest.mark.parametrize("put", [
    lambda reads: reads.put_text("x", "/d/f"),
    lambda reads: reads.put(Path("/dev/null"), "/d/f"),
])
def test_a_file_put_there_leaves_the_answers_about_others(
        put: Callable[[RememberedReads], None]) -> None:
    """It changes that file alone: ``/d/g`` and ``/d`` are other paths."""
    session = Recorder()
    reads = RememberedReads(session)
    reads.fetch([["test", "-s", "/d/f"], ["sha256sum", "/d/g"], ["test", "-d", "/d"]])
    put(reads)
    assert reads.run(["sha256sum", "/d/g"]).stdout == "batched sha256sum /d/g"
    assert reads.run(["test", "-d", "/d"]).stdout == "batched test -d /d"
    assert reads.run(["test", "-s", "/d/f"]).stdout != "batched test -s /d/f"


def test_an_answer_read_after_a_change_is_remembered_until_the_next() -> None:
    session = Recorder()
    reads = RememberedReads(session)
    reads.fetch([["state", "a"], ["state", "b"]])
    reads.run(["start", "a"])
    reads.remember(["state", "a"], CommandResult("state a", 0, "running", ""))
    assert reads.run(["state", "a"]).stdout == "running"
    assert reads.run(["state", "b"]).stdout == "3"  # the change made the batch old
    assert reads.run(["state", "a"]).stdout == "4"  # and so did the read of b


class LocalSSH(SSHTransport):
    """SSHTransport with its one channel replaced by a local `sh -c` of the command line
    it sends (sshd hands the line to the user's shell the same way)."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__("l1", lambda _t: None, cast(paramiko.PKey, None),
                         tmp_path / "known_hosts")
        self.lines: list[str] = []

    def _exec(self, argv: list[str], timeout: float,
              shown: str | None = None) -> tuple[CommandResult, bytes]:
        line = shlex.join(argv)
        self.lines.append(line)
        done = subprocess.run(["sh", "-c", line], capture_output=True, timeout=timeout)
        return CommandResult(line, done.returncode, done.stdout.decode(),
                             done.stderr.decode()), done.stdout


def test_ssh_sends_a_batch_as_one_command_line(tmp_path: Path) -> None:
    ssh = LocalSSH(tmp_path)
    results = ssh.run_batch([["echo", "a b"], ["sh", "-c", "echo e >&2; exit 4"],
                             ["test", "-d", str(tmp_path)]])
    assert len(ssh.lines) == 1
    assert [(r.exit_status, r.stdout, r.stderr) for r in results] == [
        (0, "a b\n", ""), (4, "", "e\n"), (0, "", "")]
    assert ssh.run_batch([]) == [] and len(ssh.lines) == 1
