"""`nestlab ls`: the labs on this host from their folders, damaged ones listed as such."""

from __future__ import annotations

import json
import re
from pathlib import Path

import libvirt
from click.testing import CliRunner

from nestlab.cli import main
from nestlab.commands.down import down
from nestlab.progress import Reporter
from nestlab.state.record import claim_lab_dir
from tests.fakes.linux import FakeLinuxL1
from tests.integration.conftest import LAB_FILE, TWO_HOSTS, bring_up


def ls(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["ls", *args])
    return result.exit_code, result.stdout, result.stderr


def test_ls_lists_labs_up_and_down_and_a_damaged_one(
        l0: libvirt.virConnect, guests: dict[str, FakeLinuxL1], home: Path,
        tmp_path: Path) -> None:
    bring_up(LAB_FILE, home)
    pair = tmp_path / "pair.yaml"
    pair.write_text(TWO_HOSTS)
    bring_up(pair, home)
    down(home / "labs" / "pair", False, Reporter("pair", home / "labs" / "pair", "down",
                                                  show=False), "test:///l0")
    broken = home / "labs" / "broken"
    claim_lab_dir(broken, "broken")
    (broken / "lab.json").write_text('{"lab": "broken", "uri": ')
    (home / "labs" / "not-a-lab").mkdir()  # no marker: not nestlab's
    (home / "labs" / "stray.txt").write_text("")

    code, out, err = ls("--json")
    assert code == 0, err
    labs = {lab["name"]: lab for lab in json.loads(out)}
    assert list(labs) == ["broken", "linux-nested", "pair"]
    nested = labs["linux-nested"]
    assert (nested["state"], nested["sandbox"], nested["uri"], nested["accel"]) == (
        "up", False, "test:///l0", "kvm")
    assert (nested["l1s"], nested["l2s"], nested["last_up_outcome"]) == (1, 1, "ok")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", nested["last_up"])
    assert (labs["pair"]["state"], labs["pair"]["l1s"], labs["pair"]["l2s"]) == ("down", 2, 1)
    assert labs["pair"]["uri"] is None and labs["pair"]["last_up"] is not None
    assert labs["broken"]["state"] == "damaged"
    assert "a damaged lab record" in labs["broken"]["problem"]

    code, out, err = ls()
    assert code == 0, err
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]
            if line and not line.startswith("broken:")}
    assert rows["linux-nested"][:5] == ["up", "test:///l0", "kvm", "1", "1"]
    assert rows["pair"][:4] == ["down", "kvm", "2", "1"]
    assert rows["broken"] == ["damaged"]
    assert re.search(r"^broken: .*a damaged lab record", out, re.MULTILINE)


def test_a_lab_without_a_plan_or_events_is_listed_not_a_crash(home: Path) -> None:
    halfway = home / "labs" / "halfway"
    claim_lab_dir(halfway, "halfway")
    (halfway / "lab.json").write_text(json.dumps({
        "lab": "halfway", "lab_file": "/x.yaml", "uri": "test:///l0", "sandbox": False,
        "netns": None}))
    (halfway / "events.jsonl").write_bytes(b"\xff\xfe not json\n")
    claim_lab_dir(home / "labs" / "fresh", "fresh")  # an `up` refused before its plan
    code, out, err = ls("--json")
    assert code == 0, err
    labs = {lab["name"]: lab for lab in json.loads(out)}
    assert labs["halfway"]["state"] == "damaged"
    assert "no plan.json" in labs["halfway"]["problem"]
    assert labs["fresh"]["state"] == "down" and labs["fresh"]["l1s"] is None


def test_ls_without_labs(home: Path) -> None:
    code, out, _ = ls()
    assert code == 0
    assert out.startswith("no labs in ")
    assert ls("--json")[1] == "[]\n"
