"""A new `nestlab` process pays for what its command uses: `--help` loads none of the
heavy libraries, and `status --cached` reads two files and the event log without
libvirt, SSH, WinRM, pydantic or the templates (cli.py's docstring says why).

Each command runs in a new Python, as a user starts it, and the test looks at what
that process imported. When one fails, `python -X importtime -m nestlab ARGS` shows
which import brought the library in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nestlab.state.record import LabRecord, append_event, claim_lab_dir, save_record
from nestlab.state.seen import L1Seen, L2Seen, LabSeen, NetworkSeen, save_seen

HEAVY = {
    "libvirt": "libvirt-python", "paramiko": "SSH", "cryptography": "SSH's crypto",
    "nacl": "SSH's crypto", "bcrypt": "SSH's keys", "pypsrp": "WinRM", "spnego": "WinRM",
    "requests": "WinRM's HTTP", "pydantic": "the lab file's model",
    "pydantic_core": "the lab file's model", "yaml": "the lab file", "jinja2": "templates",
    "pycdlib": "ISO images", "testinfra": "verify", "pytest": "verify",
}
"""Top-level packages by what needs them; none is for a command that only reads."""

LOADED = """\
import sys
from nestlab.cli import main
try:
    main(sys.argv[1:], prog_name="nestlab")
finally:
    print("loaded:", *sorted({name.split(".")[0] for name in sys.modules}))
"""


def loaded_by(*args: str, home: Path | None = None) -> tuple[str, set[str]]:
    """(stdout, the top-level packages imported) of `nestlab ARGS` in a new Python."""
    env = {**os.environ, **({"NESTLAB_HOME": str(home)} if home else {})}
    run = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True,
                         text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    out, _, last = run.stdout.rstrip("\n").rpartition("\n")
    assert last.startswith("loaded: ")
    return out, set(last.split()[1:])


def test_help_lists_every_command_and_loads_no_heavy_library() -> None:
    from nestlab.cli import main

    out, loaded = loaded_by("--help")
    listed = {line.split()[0] for line in out.split("Commands:")[1].splitlines() if line}
    assert listed == {name for name, command in main.commands.items() if not command.hidden}
    assert {name: HEAVY[name] for name in loaded & HEAVY.keys()} == {}
    assert "rich" not in loaded


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    """NESTLAB_HOME with lab `demo` up and its status recorded, written by nestlab's own
    state functions as `up` and `status` write them."""
    home = tmp_path / "home"
    folder = home / "labs" / "demo"
    claim_lab_dir(folder, "demo")
    save_record(folder, LabRecord(lab="demo", lab_file="demo.yaml", uri="test:///default",
                                  sandbox=False, netns=None))
    save_seen(folder, LabSeen(
        lab="demo", accel="tcg", uri="test:///default", sandbox=None,
        networks=(NetworkSeen("nestlab-demo-lab", "active"),),
        hosts=(L1Seen(name="kvm1", domain="nestlab-demo-kvm1", os="debian-12",
                      state="running", address="10.80.0.10",
                      guests=(L2Seen("prime1", "nestlab-demo-prime1", "192.168.100.10",
                                     "running"),)),),
        at=1_790_000_000.0, by="status"))
    append_event(folder, {"lab": "demo", "command": "up", "run": "r1", "guest": "kvm1",
                          "phase": "ssh", "start": 1.0, "end": 31.0, "seconds": 30.0,
                          "outcome": "ok"})
    return home


@pytest.mark.parametrize("output", [(), ("--json",)], ids=["table", "json"])
def test_status_cached_loads_no_heavy_library(recorded: Path, output: tuple[str, ...]) -> None:
    out, loaded = loaded_by("status", "--lab", "demo", "--cached", *output, home=recorded)
    assert "prime1" in out and "192.168.100.10" in out  # it did show the recorded status
    assert {name: HEAVY[name] for name in loaded & HEAVY.keys()} == {}
