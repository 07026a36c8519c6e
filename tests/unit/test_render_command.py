"""`nestlab render` as a user meets it: what it writes, and one message (exit 2) for a
folder it cannot write into."""

from __future__ import annotations

import base64
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from nestlab.cli import main
from nestlab.hostcheck import check_host
from nestlab.labfile import load_lab
from nestlab.plan import make_plan
from nestlab.render import PUBLIC_KEY_PLACEHOLDER, render_guest_domain_xml
from tests.conftest import EXAMPLES, FACTS, facts

LINUX = str(EXAMPLES / "linux-nested.yaml")
THIS_MACHINE = str(FACTS / "this-machine-paravirtual-kvm.json")
NOBODY = 65534


@pytest.fixture(autouse=True)
def _lab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("NESTLAB_HOME", str(home))
    return home


def render(out: Path, lab: str = LINUX) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["render", "-f", lab, "--facts", THIS_MACHINE,
                                       "--out", str(out)])
    return result.exit_code, result.stdout, result.stderr


def test_out_under_a_regular_file_is_refused_with_one_message(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    code, out, err = render(tmp_path / "file" / "out")
    assert (code, out) == (2, "")
    assert err.splitlines()[0] == (f"nestlab: error: {tmp_path}/file/out: cannot write the "
                                   "rendered files: Not a directory")
    assert "Traceback" not in err and "internal error" not in err


def test_out_that_is_a_regular_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    code, _, err = render(tmp_path / "file")
    assert code == 2
    assert "is a file" in err  # click's own check of --out


@pytest.fixture
def read_only_folder() -> Iterator[Path]:
    """A folder only its owner (root) may write to, in a place anyone can reach."""
    folder = Path(tempfile.mkdtemp(prefix="nestlab-ro-"))
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)
    folder.rmdir()


def _as_nobody_if_root(run: object) -> int:
    """Run ``run()`` (returning an exit code) without root's right to write anywhere:
    in a forked child as nobody when the tests run as root, directly otherwise."""
    assert callable(run)
    if os.geteuid() != 0:
        return int(run())
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's status is the result
        code = 99
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = int(run())
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_read_only_out_folder_is_refused_with_exit_2(read_only_folder: Path) -> None:
    out = read_only_folder / "out"
    assert _as_nobody_if_root(lambda: render(out)[0]) == 2
    assert not out.exists()


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4 lab"
L2_XML = "l1/kvm1/domains/nestlab-linux-nested-prime1.xml"


def l2_authkey(out: Path) -> str:
    cmdline = ET.parse(out / L2_XML).getroot().findtext("os/cmdline") or ""
    return next(w for w in cmdline.split() if w.startswith("nestlab.authkey=")).partition("=")[2]


def test_l2_xml_carries_the_key_up_would_give_it(tmp_path: Path, _lab_home: Path) -> None:
    keys = _lab_home / "labs" / "linux-nested" / "keys"
    keys.mkdir(parents=True)
    (keys / "id_ed25519.pub").write_text(KEY + "\n")
    assert render(tmp_path / "out")[0] == 0
    assert base64.b64decode(l2_authkey(tmp_path / "out")).decode() == KEY
    lab = load_lab(LINUX)
    plan = make_plan(lab, check_host(facts("this-machine-paravirtual-kvm"), lab),
                     _lab_home / "labs" / "linux-nested", KEY)
    assert (tmp_path / "out" / L2_XML).read_text() == render_guest_domain_xml(
        plan, plan.hosts[0], plan.hosts[0].guests[0])  # what provisioning puts in the L1


def test_before_the_first_up_the_key_is_an_obvious_placeholder(tmp_path: Path) -> None:
    assert render(tmp_path / "out")[0] == 0
    assert l2_authkey(tmp_path / "out") == PUBLIC_KEY_PLACEHOLDER
    assert "first-up" in PUBLIC_KEY_PLACEHOLDER and " " not in PUBLIC_KEY_PLACEHOLDER
