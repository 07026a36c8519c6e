"""plan and render of a lab with seats, from recorded host facts: every seat, or one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nestlab.cli import main
from tests.conftest import FACTS
from tests.unit.test_seats import COURSE

AMD = str(FACTS / "amd-nested-1.json")


@pytest.fixture
def course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path / "home"))
    path = tmp_path / "course.yaml"
    path.write_text(COURSE + "seats: 2\n")
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_plan_shows_every_seat_or_the_one_asked_for(course: Path) -> None:
    code, out, _ = run("plan", "-f", str(course), "--facts", AMD, "--json")
    assert code == 0
    plans = json.loads(out)
    assert plans["lab"] == "course"
    assert [p["lab"] for p in plans["seats"]] == ["course-s01", "course-s02"]
    assert "network nestlab-course-s02-lab" in {s["step"] for s in plans["seats"][1]["steps"]}
    code, out, _ = run("plan", "-f", str(course), "--facts", AMD, "--seat", "2", "--json")
    assert code == 0 and json.loads(out)["lab"] == "course-s02"
    code, _, err = run("plan", "-f", str(course), "--facts", AMD, "--seat", "3")
    assert code == 2 and "lab course has 2 seats; there is no seat 3" in err


def test_render_writes_each_seat_into_its_own_folder(course: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, out, _ = run("render", "-f", str(course), "--facts", AMD, "--out", str(out_dir),
                       "--json")
    assert code == 0
    assert [s["lab"] for s in json.loads(out)["seats"]] == ["course-s01", "course-s02"]
    text = "".join(p.read_text() for p in (out_dir / "course-s02").rglob("*.xml"))
    assert "nestlab-course-s02-kvm1" in text
    assert "10.77.1.1" in text and "10.77.0.1" not in text
    code, _, _ = run("render", "-f", str(course), "--facts", AMD, "--out",
                     str(tmp_path / "one"), "--seat", "1")
    assert code == 0
    assert "10.77.0.1" in "".join(p.read_text() for p in (tmp_path / "one").rglob("*.xml"))


def test_up_seats_refuses_what_a_lab_cannot_have(course: Path) -> None:
    course.write_text(COURSE.replace("lab: course", "lab: abcdefghijklmnopq"))
    code, _, err = run("up", "-f", str(course), "--seats", "2")
    assert code == 2 and "too long for a lab with seats" in err
    code, _, err = run("up", "-f", str(course), "--seats", "41")
    assert code == 2 and "41" in err
