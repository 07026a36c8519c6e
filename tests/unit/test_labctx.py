"""A brought-up lab as exec/ssh/status see it, from its recorded state."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.commands.access import (
    console_command,
    console_log,
    require_ssh,
    run_command,
    write_ssh_config,
)
from nestlab.commands.context import LabContext, NoSuchGuest
from nestlab.errors import NestlabError
from nestlab.host.check import HostDecision
from nestlab.plan import make_plan
from nestlab.state.record import LabRecord, save_plan, save_record
from tests.conftest import example as example_lab


def recorded(tmp_path: Path, example: str, accel: str) -> LabContext:
    save_record(tmp_path, LabRecord(lab=example, lab_file="x", uri="test:///default",
                                    sandbox=False, netns=None))
    decision = HostDecision(accel=accel, vendor="intel", evmcs=True)  # type: ignore[arg-type]
    save_plan(tmp_path, make_plan(example_lab(example), decision, tmp_path), "sha")
    (tmp_path / "lab.yaml").write_text("not read any more: the plan is")
    return LabContext.load(tmp_path)


def test_the_saved_plan_is_loaded_and_the_lab_file_not_read(tmp_path: Path) -> None:
    ctx = recorded(tmp_path, "linux-nested", "tcg")
    assert ctx.plan.accel == "tcg"
    assert ctx.find("prime1")[0].name == "kvm1"
    with pytest.raises(NoSuchGuest, match="has no guest named 'nope'") as info:
        ctx.find("nope")
    assert info.value.hint == "Its guests: kvm1, prime1."


def test_a_linux_guest_console_goes_through_its_l1(tmp_path: Path) -> None:
    ctx = recorded(tmp_path, "linux-nested", "tcg")
    assert console_command(ctx, "kvm1") == ["virsh", "-c", "test:///default", "console",
                                           "nestlab-linux-nested-kvm1"]
    argv = console_command(ctx, "prime1")
    assert argv[0] == "ssh" and argv[-4:] == ["kvm1", "virsh", "console",
                                              "nestlab-linux-nested-prime1"]


def test_ssh_config_names_every_linux_guest(tmp_path: Path) -> None:
    ctx = recorded(tmp_path, "linux-nested", "tcg")
    config = write_ssh_config(ctx).read_text()
    assert "Host kvm1\n" in config and "Host prime1\n" in config
    assert "StrictHostKeyChecking yes" in config
    assert "ProxyCommand " in config and " _proxy --lab-dir " in config


def test_windows_guests_are_not_reached_over_ssh(tmp_path: Path) -> None:
    ctx = recorded(tmp_path, "windows-hyperv", "kvm")
    with pytest.raises(NestlabError, match="hv1: no SSH into hv1 or its guests"):
        require_ssh(ctx, "hv1")
    with pytest.raises(NestlabError, match="prime1: no SSH into hv1 or its guests"):
        require_ssh(ctx, "prime1")
    with pytest.raises(NestlabError, match="prime1 runs under Hyper-V in hv1"):
        run_command(ctx, "prime1", ["uname"])
    # Its screen (VNC) is shown for a running L1 (tests/integration/test_windows_lab.py).
    with pytest.raises(NestlabError, match="hv1 is not running: it has no screen to show"):
        console_command(ctx, "hv1")
    assert "Host" not in write_ssh_config(ctx).read_text().split("\n", 1)[1]


def test_a_sandbox_that_does_not_answer_is_not_the_hosts_libvirtd(tmp_path: Path) -> None:
    # The old hint said to enable the host's libvirtd: wrong advice for a sandboxed lab.
    save_record(tmp_path, LabRecord(lab="linux-nested", lab_file="x",
                                    uri=f"qemu+unix:///system?socket={tmp_path}/nosock",
                                    sandbox=True, netns="nestlab-linux-nested"))
    decision = HostDecision(accel="tcg", vendor="amd", evmcs=False)
    save_plan(tmp_path, make_plan(example_lab("linux-nested"), decision, tmp_path), "sha")
    with pytest.raises(NestlabError, match="the sandbox libvirtd of lab linux-nested does not "
                                           "answer") as info:
        LabContext.load(tmp_path).libvirt()
    assert info.value.hint is not None and "`nestlab up` starts the sandbox again" in \
        info.value.hint and "systemctl" not in info.value.hint


def test_windows_guests_keep_no_console_log(tmp_path: Path) -> None:
    ctx = recorded(tmp_path, "windows-hyperv", "kvm")
    with pytest.raises(NestlabError, match="hv1: a Windows L1 has no serial console log") as info:
        console_log(ctx, "hv1", 10)
    assert info.value.hint == "`nestlab console hv1` says how to see its screen."
    with pytest.raises(NestlabError, match="prime1: a Hyper-V L2 has no console log"):
        console_log(ctx, "prime1", 10)
