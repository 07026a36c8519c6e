"""The console watch that hears an L2 announce itself (provision/linux.py), run for real
with this machine's sh, coreutils, grep and procps: the same Debian tools an L1 has."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from nestlab.provision import linux
from nestlab.transport.base import CommandResult

BANNER = "[    0.000000] Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org)\n"
UP = "nestlab-prime: up, kernel 6.1.0-28-amd64\n"


class LocalShell:
    """Runs the argv here, as the L1's SSH would there."""

    def __init__(self) -> None:
        self.took: list[float] = []

    def run(self, argv: list[str], timeout: float = 600.0) -> CommandResult:
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False)
        self.took.append(time.monotonic() - started)
        return CommandResult(" ".join(argv), done.returncode, done.stdout, done.stderr)


def watch(log: Path, seconds: float) -> tuple[bool, float]:
    shell = LocalShell()
    heard = linux.await_announcement(shell, str(log), seconds)  # type: ignore[arg-type]
    return heard, shell.took[0]


def test_an_l2_that_announced_itself_in_its_current_boot_is_heard_at_once(
        tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text(BANNER + "udhcpc: lease obtained\n" + UP + "~ # \n")
    heard, took = watch(log, 10)
    assert heard and took < 2


def test_an_announcement_of_an_earlier_boot_does_not_count(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text(BANNER + UP + BANNER + "booting again\n")
    heard, took = watch(log, 1)
    assert not heard and took >= 0.9  # waited its time: the new boot has not announced


def test_a_line_appended_while_it_watches_is_heard_as_it_comes(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text(BANNER + "booting\n")

    def announce() -> None:
        time.sleep(1.5)
        with log.open("a") as out:
            out.write(UP)  # and nothing after it: no later write is needed to end the watch

    writer = threading.Thread(target=announce)
    writer.start()
    heard, took = watch(log, 20)
    writer.join()
    assert heard and 1.4 < took < 5


def test_a_missing_log_is_waited_for_and_then_not_heard(tmp_path: Path) -> None:
    heard, took = watch(tmp_path / "none.log", 1)
    assert not heard and took < 10


def test_an_l1_is_heard_on_its_console_log_on_l0(tmp_path: Path) -> None:
    from nestlab.drivers.linux import ConsoleWatch

    log = tmp_path / "console.log"
    log.write_text(BANNER + "[  OK  ] Started ssh.service\n")
    said: list[str] = []
    watch = ConsoleWatch(log)
    assert not watch.await_ready(1, threading.Event(), said.append)
    assert said == ["waiting for it to announce SSH on its console"]
    with log.open("a") as out:
        out.write("nestlab-l1: ssh up\n")
    assert watch.await_ready(5, threading.Event(), said.append)
