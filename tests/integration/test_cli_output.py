"""The CLI in pipes and under Ctrl-C, as CI and `| tee` and `| head` meet it: progress as
timestamped lines on stderr, stdout only the result, a closed stdout ending quietly,
and an interrupted command saying what is true after it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import libvirt
import pytest
from click.testing import CliRunner

from nestlab import cli
from nestlab.host.facts import HostFacts
from nestlab.plan import HostPlan
from nestlab.provision import linux as provision_linux
from nestlab.state.record import read_events
from tests.conftest import EXAMPLES, FACTS, REPO, facts
from tests.fakes.linux import FakeLinuxL1
from tests.integration.conftest import LAB_FILE

STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (L0|kvm1|prime1): ", re.MULTILINE)
THIS_MACHINE = str(FACTS / "this-machine-paravirtual-kvm.json")


@pytest.fixture
def recorded_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """`up` decides from a recorded AMD host with nested KVM, not from this machine."""

    def read(_uri: str, _root: Path) -> HostFacts:
        return facts("amd-nested-1")

    monkeypatch.setattr("nestlab.host.facts.read_host_facts", read)


def nestlab(*args: str) -> tuple[int, str, str]:
    """Click's runner gives the command a stderr that is not a terminal, like CI's."""
    result = CliRunner().invoke(cli.main, ["--connect", "test:///l0", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.usefixtures("recorded_host")
def test_up_in_a_pipe_prints_a_timestamped_line_per_event(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    code, out, err = nestlab("up", "-f", str(LAB_FILE))
    assert code == 0, err
    lines = err.splitlines()
    assert lines and all(STAMPED.match(line) for line in lines), lines
    for step in ("kvm1: disk ...", "kvm1: disk changed in", "kvm1: ssh ...",
                 "prime1: proven (SSH via kvm1) ok in"):
        assert any(step in line for line in lines), step
    assert not STAMPED.search(out)  # stdout is the result only
    assert "lab linux-nested is up" in out


@pytest.mark.usefixtures("recorded_host")
def test_up_json_keeps_stdout_json_and_progress_on_stderr(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path) -> None:
    code, out, err = nestlab("up", "-f", str(LAB_FILE), "--json")
    assert code == 0, err
    assert json.loads(out)["failed"] == 0
    assert STAMPED.search(err)
    code, out, err = nestlab("up", "-f", str(LAB_FILE), "--json", "--quiet")
    assert (code, err) == (0, "")
    assert json.loads(out)["changed"] == 0


@pytest.mark.usefixtures("recorded_host")
def test_ctrl_c_in_up_says_up_again_continues_and_it_does(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_check_kvm = provision_linux.check_kvm
    pressed: list[bool] = []

    def ctrl_c_once(t: FakeLinuxL1, host: HostPlan) -> str:
        if not pressed:
            pressed.append(True)
            raise KeyboardInterrupt
        return real_check_kvm(t, host)

    monkeypatch.setattr(provision_linux, "check_kvm", ctrl_c_once)
    code, _out, err = nestlab("up", "-f", str(LAB_FILE))
    assert code == 130
    assert "nestlab: error: interrupted\nhint: Run the same `nestlab up` again: it continues " \
           "where this one stopped." in err
    assert "Traceback" not in err
    code, _out, err = nestlab("up", "-f", str(LAB_FILE))
    assert code == 0, err
    again = [e for e in read_events(home / "labs" / "linux-nested")
             if e["command"] == "up"][-1]["run"]
    changed = {(e["guest"], e["phase"]) for e in read_events(home / "labs" / "linux-nested")
               if e["run"] == again and e["outcome"] == "changed"}
    assert ("kvm1", "disk") not in changed  # continued: what was done stays done
    assert ("prime1", "define + start in kvm1") in changed


def test_ctrl_c_in_a_command_that_only_reads_says_nothing_changed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("nestlab.host.check.check_host", interrupted)
    code, _out, err = nestlab("check", "-f", str(LAB_FILE), "--facts", THIS_MACHINE)
    assert code == 130
    assert err == "nestlab: error: interrupted\nhint: Nothing was changed.\n"


@pytest.mark.parametrize("args", [
    ["schema"],
    ["check", "-f", str(EXAMPLES / "linux-nested.yaml"), "--facts", THIS_MACHINE, "--json"],
    ["render", "-f", str(EXAMPLES / "linux-nested.yaml"), "--facts", THIS_MACHINE,
     "--out", "{out}"],
], ids=["schema", "check", "render"])
def test_a_closed_stdout_ends_quietly_with_141(args: list[str], tmp_path: Path) -> None:
    """`nestlab ... | head`: the reader is gone before nestlab writes (as head is after its
    first lines)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = os.environ | {"NESTLAB_HOME": str(tmp_path / "home"),
                        "NESTLAB_CACHE": str(tmp_path / "cache")}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "nestlab", *(a.format(out=tmp_path / "out") for a in args)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
            timeout=60, check=False)
    finally:
        os.close(write_end)
    assert result.returncode == 141, result.stderr  # 128 + SIGPIPE, as for `yes | head`
    assert result.stderr == ""  # no "internal error", no "Exception ignored"
