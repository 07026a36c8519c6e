"""A brought-up lab as exec/ssh/status see it, from its recorded state."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nestlab.access import write_ssh_config
from nestlab.errors import NestlabError
from nestlab.labctx import LAB_SNAPSHOT, LabContext, NoSuchGuest
from nestlab.state import LabRecord, save_record
from tests.conftest import EXAMPLES


def recorded(tmp_path: Path, example: str, accel: str) -> LabContext:
    save_record(tmp_path, LabRecord(lab=example, lab_file="x", uri="test:///default",
                                    sandbox=False, netns=None, accel=accel,  # type: ignore[arg-type]
                                    vendor="intel", evmcs=True))
    shutil.copyfile(EXAMPLES / f"{example}.yaml", tmp_path / LAB_SNAPSHOT)
    return LabContext.load(tmp_path)


def test_the_plan_is_rebuilt_from_the_record(tmp_path: Path) -> None:
    ctx = recorded(tmp_path, "linux-nested", "tcg")
    assert ctx.plan.accel == "tcg"
    assert ctx.find("prime1")[0].name == "kvm1"
    with pytest.raises(NoSuchGuest, match="has no guest named 'nope'") as info:
        ctx.find("nope")
    assert info.value.hint == "Its guests: kvm1, prime1."


def test_ssh_config_names_every_linux_guest(tmp_path: Path) -> None:
    ctx = recorded(tmp_path, "linux-nested", "tcg")
    config = write_ssh_config(ctx).read_text()
    assert "Host kvm1\n" in config and "Host prime1\n" in config
    assert "StrictHostKeyChecking yes" in config
    assert "ProxyCommand " in config and " _proxy --lab-dir " in config


def test_windows_guests_are_not_reached_over_ssh(tmp_path: Path) -> None:
    ctx = recorded(tmp_path, "windows-hyperv", "kvm")
    with pytest.raises(NestlabError, match="no SSH into a Windows L1"):
        ctx.require_ssh("hv1")
    with pytest.raises(NestlabError, match="prime1 runs under Hyper-V in hv1"):
        ctx.run("prime1", ["uname"])
    assert "Host" not in write_ssh_config(ctx).read_text().split("\n", 1)[1]
