"""The sandbox's supervisor keeps its daemons running: one that dies is started again,
one that keeps dying ends the sandbox, SIGTERM stops everything. Run with stand-in
daemons (sleep) in a process of its own: no root, no namespace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nestlab.sandbox.supervisor import DAEMONS

SCRIPT = """
import sys
from nestlab.sandbox import supervisor
supervisor.RESTART_WINDOW = 60.0
sys.exit(supervisor.supervise({"a": ["sleep", "300"], "b": ["sleep", "301"]}))
"""


def children(pid: int) -> dict[str, int]:
    """The supervisor's children by the command line they run."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            listed = (task / "children").read_text().split()
        except OSError:
            continue  # a thread that ended meanwhile
        for child in listed:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            if cmdline:  # a zombie has none: it is not running
                found[cmdline.replace(b"\0", b" ").strip().decode()] = int(child)
    return found


def wait_for_children(pid: int) -> dict[str, int]:
    """Both stand-in daemons running (a child just forked still shows the supervisor's own
    command line until it execs)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = children(pid)
        if set(found) == {"sleep 300", "sleep 301"}:
            return found
        time.sleep(0.02)
    pytest.fail(f"the supervisor runs {children(pid)}, not both daemons")


@pytest.fixture
def supervisor() -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stderr=subprocess.PIPE, text=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for child in children(proc.pid).values() if proc.poll() is None else ():
        os.kill(child, signal.SIGKILL)


def test_a_daemon_that_dies_is_started_again(supervisor: subprocess.Popen[str]) -> None:
    first = wait_for_children(supervisor.pid)
    os.kill(first["sleep 300"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = children(supervisor.pid)
        if now.get("sleep 300") not in (None, first["sleep 300"]):
            break
        time.sleep(0.05)
    assert now["sleep 300"] != first["sleep 300"]  # a new one
    assert now["sleep 301"] == first["sleep 301"]  # the other untouched
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(10) == 0
    assert "a exited (-9); starting it again" in supervisor.stderr.read()  # type: ignore[union-attr]


def test_a_daemon_that_keeps_dying_ends_the_sandbox(supervisor: subprocess.Popen[str]) -> None:
    for _ in range(6):
        pid = wait_for_children(supervisor.pid)["sleep 300"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and children(supervisor.pid).get("sleep 300") == pid:
            time.sleep(0.02)
        if supervisor.poll() is not None:
            break
    assert supervisor.wait(10) == 0
    assert "a died 6 times within 60s; stopping the sandbox" in supervisor.stderr.read()  # type: ignore[union-attr]


def test_the_daemons_keep_their_pid_files_in_the_private_run_folder() -> None:
    for argv in DAEMONS.values():
        pid_file = argv[argv.index("--pid-file") + 1]
        assert pid_file.startswith("/run/libvirt/")  # the supervisor's own tmpfs
