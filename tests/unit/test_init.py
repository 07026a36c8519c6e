"""`nestlab init`: the scaffold of a course folder, for both templates."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from nestlab.cli import main
from nestlab.commands.init import init, lab_name_for
from nestlab.errors import InputError
from nestlab.lab.labfile import load_lab

FILES = ["Makefile", "README.md", "nestlab.yaml", "tests/test_lab.py"]


@pytest.mark.parametrize("template", ["linux", "windows"])
def test_the_scaffold_is_a_lab_file_a_makefile_checks_and_a_readme(
        tmp_path: Path, template: str) -> None:
    folder = tmp_path / "Networks 101"
    written = init(folder, template, None)
    assert sorted(str(p.relative_to(folder)) for p in written) == FILES
    lab = load_lab(folder / "nestlab.yaml")
    assert lab.name == "networks-101"
    assert {h.os.profile.family for h in lab.hosts} == {template}
    assert all(h.guests for h in lab.hosts)
    compile((folder / "tests" / "test_lab.py").read_text(), "test_lab.py", "exec")
    assert "networks-101" in (folder / "README.md").read_text()


@pytest.mark.parametrize(("target", "command"), [
    ("lab", "nestlab up -f nestlab.yaml"),
    ("verify", "nestlab verify -f nestlab.yaml tests --junit junit.xml"),
    ("ssh HOST=kvm1", "nestlab ssh -f nestlab.yaml kvm1"),
    ("status", "nestlab status -f nestlab.yaml"),
    ("down", "nestlab down -f nestlab.yaml"),
    ("clean", "nestlab down -f nestlab.yaml --purge"),
    ("lab UP_FLAGS=--sandbox", "nestlab up -f nestlab.yaml --sandbox"),
    ("seats N=12", "nestlab up -f nestlab.yaml --seats 12 --baseline"),
    ("seats N=2 UP_FLAGS=-q", "nestlab up -f nestlab.yaml --seats 2 --baseline -q"),
    ("reset SEAT=3", "nestlab reset -f nestlab.yaml --seat 3"),
    ("handouts SEATS=2", "nestlab handout -f nestlab.yaml --seat 2 --out handouts/seat-2"),
    ("handouts SEATS=2 JUMP=me@lab.example.edu",
     "nestlab handout -f nestlab.yaml --seat 1 --out handouts/seat-1 --jump me@lab.example.edu"),
    ("handout SEAT=4", "nestlab handout -f nestlab.yaml --seat 4 --out handouts/seat-4"),
    ("verify SEATS=2", "nestlab verify -f nestlab.yaml --seat 2 tests --junit junit-s2.xml "
                       "> verify-s2.txt 2>&1; echo $? > verify-s2.rc"),
    ("clean", "rm -rf junit.xml junit-s*.xml verify-s*.txt verify-s*.rc handouts"),
])
def test_each_make_target_prints_and_runs_one_nestlab_command(
        tmp_path: Path, target: str, command: str) -> None:
    init(tmp_path, "linux", "course")
    run = subprocess.run(["make", "-n", *target.split()], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert command in [line.strip() for line in run.stdout.splitlines()]


@pytest.mark.parametrize(("target", "usage"), [
    ("ssh", "usage: make ssh HOST=NAME"), ("seats", "usage: make seats N=COUNT"),
    ("reset", "usage: make reset SEAT=K"), ("handouts", "usage: make handouts SEATS=COUNT"),
    ("handout", "usage: make handout SEAT=K"),
])
def test_a_make_target_without_its_variable_says_how(tmp_path: Path, target: str,
                                                     usage: str) -> None:
    init(tmp_path, "linux", "course")
    run = subprocess.run(["make", target], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 2
    assert usage in run.stdout


def make_n(folder: Path, *args: str) -> list[str]:
    run = subprocess.run(["make", "-n", *args], cwd=folder, capture_output=True, text=True,
                         check=True)
    return [line.strip() for line in run.stdout.splitlines()]


@pytest.mark.parametrize("template", ["linux", "windows"])
def test_the_lab_files_seats_make_verify_and_handouts_cover_every_seat(
        tmp_path: Path, template: str) -> None:
    init(tmp_path, template, "course")
    lab_file = tmp_path / "nestlab.yaml"
    assert "nestlab verify -f nestlab.yaml tests --junit junit.xml" in make_n(tmp_path, "verify")
    lab_file.write_text(lab_file.read_text() + "seats: 3  # one per student\n")
    verify = [line for line in make_n(tmp_path, "verify") if line.startswith("nestlab ")]
    assert verify == [f"nestlab verify -f nestlab.yaml --seat {k} tests --junit junit-s{k}.xml "
                      f"> verify-s{k}.txt 2>&1; echo $? > verify-s{k}.rc" for k in (1, 2, 3)]
    handouts = [line for line in make_n(tmp_path, "handouts") if line.startswith("nestlab ")]
    assert handouts == [f"nestlab handout -f nestlab.yaml --seat {k} --out handouts/seat-{k}"
                        for k in (1, 2, 3)]
    assert "nestlab up -f nestlab.yaml --seats 3 --baseline" in make_n(tmp_path, "seats")


FAKE_NESTLAB = """#!/bin/sh
# A stand-in for nestlab verify --seat K: seat 2 fails one test, seat 3 is not up.
case "$5" in
  1) echo "passed  test_lab.py::test_kvm_inside[kvm1]"
     echo "lab course-s01: 3 passed in 1.0 s; JUnit XML in junit-s1.xml"; exit 0 ;;
  2) echo "failed  test_lab.py::test_kvm_inside[kvm1]"
     echo "lab course-s02: 2 passed, 1 failed in 1.0 s; JUnit XML in junit-s2.xml"; exit 1 ;;
  *) echo "nestlab: error: no such lab 'course-s03'" >&2; echo "hint: bring it up" >&2; exit 2 ;;
esac
"""


def test_make_verify_runs_every_seat_and_prints_one_line_per_seat(tmp_path: Path) -> None:
    init(tmp_path, "linux", "course")
    fake = tmp_path / "fake-nestlab"
    fake.write_text(FAKE_NESTLAB)
    fake.chmod(0o755)
    run = subprocess.run(["make", "verify", "SEATS=3", f"NESTLAB={fake}"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode != 0  # a seat failed
    seats = [line for line in run.stdout.splitlines() if line.startswith("seat ")]
    assert seats == [
        "seat 1: ok      lab course-s01: 3 passed in 1.0 s; JUnit XML in junit-s1.xml",
        "seat 2: FAILED  lab course-s02: 2 passed, 1 failed in 1.0 s; JUnit XML in "
        "junit-s2.xml (exit 1; all of it in verify-s2.txt)",
        "seat 3: FAILED  nestlab: error: no such lab 'course-s03' (exit 2; all of it in "
        "verify-s3.txt)"]
    assert f"{fake} verify -f nestlab.yaml --seat 3 tests --junit junit-s3.xml" in run.stdout


def test_nothing_that_exists_is_overwritten(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("mine\n")
    with pytest.raises(InputError, match=r"would overwrite .*Makefile"):
        init(tmp_path, "linux", None)
    assert (tmp_path / "Makefile").read_text() == "mine\n"
    assert not (tmp_path / "nestlab.yaml").exists()


@pytest.mark.parametrize(("folder", "name"), [
    ("Networks 101", "networks-101"), ("2024_course", "course"), ("---", "lab"),
    ("a" * 40, "a" * 20), ("Ünïcode", "n-code"),
])
def test_the_lab_name_comes_from_the_folder(tmp_path: Path, folder: str, name: str) -> None:
    assert lab_name_for(tmp_path / folder) == name


def test_init_from_the_command_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", str(tmp_path / "c"), "--name", "Bad Name"])
    assert result.exit_code == 2 and "'Bad Name' is not a lab name" in result.stderr
    result = CliRunner().invoke(main, ["init", str(tmp_path / "c"), "--template", "windows"])
    assert result.exit_code == 0, result.output
    assert "next: cd " in result.stdout and "make lab && make verify" in result.stdout
