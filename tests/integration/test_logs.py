"""`nestlab logs`: the end of a guest's console log, an L1's on L0, an L2's inside its L1."""

from __future__ import annotations

import json
from pathlib import Path

import libvirt
import pytest
from click.testing import CliRunner

from nestlab.cli import main
from nestlab.commands.context import LabContext
from tests.fakes.linux import FakeLinuxL1
from tests.integration.conftest import LAB_FILE, bring_up

LAB = ["--lab", "linux-nested"]


def nestlab(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def lab(l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> LabContext:
    bring_up(LAB_FILE, home)
    return LabContext.load(home / "labs" / "linux-nested")


def boot_lines(count: int) -> str:
    return "".join(f"[ {i:4}.000] boot line {i}\r\n" for i in range(1, count + 1))


def test_logs_of_an_l1_are_the_last_lines_of_its_console_log(lab: LabContext) -> None:
    log = lab.plan.host("kvm1").console_log
    log.write_text(boot_lines(300) + "\x1b[0;32m  OK  \x1b[0m Started ssh.service\r\n"
                   + "a guest's \x1b]0;new title\x07\r\n")
    code, out, err = nestlab("logs", *LAB, "kvm1", "--lines", "3")
    assert code == 0, err
    assert out == ("[  300.000] boot line 300\n"
                   "  OK   Started ssh.service\n"  # colours dropped
                   "a guest's \\x1b]0;new title\\x07\n")  # anything else shown, not obeyed
    assert err == f"kvm1: the last 3 lines of {log}\n"
    code, out, _ = nestlab("logs", *LAB, "kvm1")
    assert len(out.splitlines()) == 100  # the default
    assert out.splitlines()[0] == "[  203.000] boot line 203"  # of 302


def test_logs_of_an_l2_are_read_inside_its_l1(lab: LabContext,
                                              guests: dict[str, FakeLinuxL1]) -> None:
    guest = lab.plan.host("kvm1").guests[0]
    guests["kvm1"].files[guest.console_log] = boot_lines(20).encode()
    code, out, err = nestlab("logs", *LAB, "prime1", "-n", "2", "--json")
    assert code == 0, err
    assert json.loads(out) == {"guest": "prime1", "where": "kvm1", "path": guest.console_log,
                               "lines": ["[   19.000] boot line 19", "[   20.000] boot line 20"]}
    assert guests["kvm1"].calls[-1] == \
        f"tail -c 1048576 {guest.console_log}"  # bounded, whatever the log's size


def test_logs_say_what_is_missing(lab: LabContext, guests: dict[str, FakeLinuxL1]) -> None:
    code, _, err = nestlab("logs", *LAB, "prime1")
    assert code == 1
    assert "prime1: no console log in kvm1 (tail: cannot open" in err
    code, _, err = nestlab("logs", *LAB, "prime9")
    assert code == 2
    assert "lab linux-nested has no guest named 'prime9'" in err
    code, _, err = nestlab("logs", *LAB, "kvm1", "--lines", "0")
    assert code == 2 and "Traceback" not in err
