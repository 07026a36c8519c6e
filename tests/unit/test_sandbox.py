"""The sandbox's bookkeeping that needs no root: which PID is really its supervisor."""

from __future__ import annotations

import os
from pathlib import Path

from nestlab.sandbox import Sandbox, supervisor_pid


def test_a_reused_pid_is_not_taken_for_the_supervisor(tmp_path: Path) -> None:
    box = Sandbox("lab", tmp_path / "sandbox")
    box.root.mkdir()
    box.pid_file.write_text(f"{os.getpid()}\n")  # alive, but pytest, not a supervisor
    assert supervisor_pid(box) is None


def test_no_pid_file_means_no_supervisor(tmp_path: Path) -> None:
    assert supervisor_pid(Sandbox("lab", tmp_path)) is None


def test_names_and_uri(tmp_path: Path) -> None:
    box = Sandbox("demo", tmp_path)
    assert box.netns == "nestlab-demo"
    assert box.uri == f"qemu+unix:///system?socket={tmp_path}/run/libvirt-sock"
