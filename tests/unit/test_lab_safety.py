"""nestlab runs as root and deletes lab folders: a lab is named, never a path; a folder
is removed only when it is marked as that lab's; a lab that does not exist is exit 2
and nothing is created; damaged state still goes down."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from nestlab.cli import main
from nestlab.host.check import HostDecision
from nestlab.lab.labfile import parse_lab
from nestlab.plan import make_plan
from nestlab.state.keys import ensure_lab_key, private_key_path
from nestlab.state.paths import BadLabName, lab_dir
from nestlab.state.record import LabRecord, claim_lab_dir, lab_lock, save_plan, save_record


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "x"
    (root / "labs").mkdir(parents=True)
    monkeypatch.setenv("NESTLAB_HOME", str(root))
    return root


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "precious").write_text("keep me")
    return folder


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--connect", "test:///default", *args])
    return result.exit_code, result.stderr


def snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("name", ["../../victim", "../victim", "/abs/path", "", ".", "..",
                                  "a/b", "UPPER", "x" * 21, "bad\x1b[31m"])
def test_lab_option_takes_a_name_only(home: Path, victim: Path, name: str) -> None:
    before = snapshot(home)
    code, err = cli("down", "--lab", name, "--purge")
    assert code == 2
    assert "is not a lab name" in err
    assert "\x1b" not in err
    assert (victim / "precious").read_text() == "keep me"
    assert snapshot(home) == before  # no lock file, no folder


def test_empty_lab_name_does_not_remove_every_lab(home: Path) -> None:
    other = home / "labs" / "other"
    claim_lab_dir(other, "other")
    ensure_lab_key(other)
    code, _err = cli("down", "--lab", "", "--purge")
    assert code == 2
    assert private_key_path(other).exists()


def test_a_lab_that_does_not_exist_is_exit_2_and_creates_nothing(home: Path) -> None:
    for command in (["down"], ["down", "--purge"], ["status"], ["ssh-config"]):
        code, err = cli(*command, "--lab", "nosuch")
        assert code == 2, command
        assert "no such lab 'nosuch'" in err
    code, err = cli("exec", "--lab", "nosuch", "kvm1", "--", "true")
    assert (code, "no such lab 'nosuch'" in err) == (2, True)
    assert snapshot(home) == ["labs"]


def test_a_symlinked_lab_folder_leading_elsewhere_is_refused(home: Path, victim: Path) -> None:
    (home / "labs" / "evil").symlink_to(victim)
    code, err = cli("down", "--lab", "evil", "--purge")
    assert code == 2
    assert "outside" in err
    assert (victim / "precious").exists()
    with pytest.raises(BadLabName):
        lab_dir("../evil")


def test_purge_removes_only_a_folder_marked_as_the_labs(home: Path) -> None:
    stranger = home / "labs" / "stranger"
    stranger.mkdir()
    (stranger / "data").write_text("not nestlab's")
    code, err = cli("down", "--lab", "stranger", "--purge")
    assert code == 2
    assert "is not the folder of a nestlab lab named 'stranger'" in err
    assert (stranger / "data").exists()


def test_purge_of_a_lab_that_is_down_removes_its_keys(home: Path) -> None:
    folder = home / "labs" / "old"
    claim_lab_dir(folder, "old")
    ensure_lab_key(folder)
    code, err = cli("down", "--lab", "old")
    assert code == 2 and "is not up (only its keys are kept)" in err
    code, _err = cli("down", "--lab", "old", "--purge")
    assert code == 0
    assert not folder.exists()


@pytest.mark.parametrize("damage", ["lab.json", "plan.json"])
def test_damaged_state_is_exit_2_and_still_goes_down(home: Path, damage: str) -> None:
    folder = home / "labs" / "broken"
    claim_lab_dir(folder, "broken")
    save_record(folder, LabRecord(lab="broken", lab_file="x", uri="test:///default",
                                  sandbox=False, netns=None))
    (folder / "plan.json").write_text('{"format": 1, "plan": {"lab": "broken", "hosts": [')
    if damage == "lab.json":
        (folder / "lab.json").write_text('{"lab": "broken", "uri": ')
    code, err = cli("status", "--lab", "broken")
    assert code == 2
    assert str(folder / damage) in err
    code, err = cli("down", "--lab", "broken", "--purge")
    assert code == 0, err
    assert not folder.exists()


def test_down_keeps_the_record_when_it_cannot_remove_a_folder(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = home / "labs" / "stuck"
    claim_lab_dir(folder, "stuck")
    save_record(folder, LabRecord(lab="stuck", lab_file="x", uri="test:///default",
                                  sandbox=False, netns=None))
    lab = parse_lab("lab: stuck\nnetworks: [{name: lab, cidr: 10.80.0.0/24}]\n"
                    "hosts: [{name: kvm1, os: debian-12, networks: [lab]}]\n")
    save_plan(folder, make_plan(lab, HostDecision("tcg", "amd", False), folder), "sha")
    (folder / "hosts" / "kvm1").mkdir(parents=True)

    def refuse(path: object, *_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("nestlab.commands.down.shutil.rmtree", refuse)
    code, err = cli("down", "--lab", "stuck")
    assert code == 1
    assert f"cannot remove {folder / 'hosts'}: Permission denied" in err
    assert (folder / "lab.json").exists()  # `down` again can find what is left


def test_lock_never_creates_the_folder_and_forgets_its_holder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), lab_lock(tmp_path / "missing", "down"):
        pass
    assert not (tmp_path / "missing").exists()
    with lab_lock(tmp_path, "up"):
        assert "nestlab up" in (tmp_path / "lock").read_text()
    assert (tmp_path / "lock").read_text() == ""  # no dead PID left behind
    assert stat.S_IMODE((tmp_path / "lock").stat().st_mode) == 0o600


def test_lab_folder_is_private(tmp_path: Path) -> None:
    claim_lab_dir(tmp_path / "labs" / "demo", "demo")
    assert stat.S_IMODE((tmp_path / "labs" / "demo").stat().st_mode) == 0o700
    assert os.access(tmp_path / "labs" / "demo" / ".nestlab-lab", os.R_OK)
