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
])
def test_each_make_target_prints_and_runs_one_nestlab_command(
        tmp_path: Path, target: str, command: str) -> None:
    init(tmp_path, "linux", "course")
    run = subprocess.run(["make", "-n", *target.split()], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert command in [line.strip() for line in run.stdout.splitlines()]


def test_make_ssh_without_a_host_says_how(tmp_path: Path) -> None:
    init(tmp_path, "linux", "course")
    run = subprocess.run(["make", "ssh"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 2
    assert "usage: make ssh HOST=NAME" in run.stdout


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
