"""`nestlab render` as a user meets it: what it writes, and one message (exit 2) for a
folder it cannot write into."""

from __future__ import annotations

import base64
import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from nestlab.build.answerfile import encode_password
from nestlab.cli import main
from nestlab.host.check import check_host
from nestlab.lab.labfile import load_lab
from nestlab.plan import make_plan
from nestlab.render import (
    PUBLIC_KEY_PLACEHOLDER,
    WINDOWS_PROVISION_SCRIPTS,
    render_guest_domain_xml,
)
from tests.conftest import EXAMPLES, FACTS, facts
from tests.powershell import syntax_errors

LINUX = str(EXAMPLES / "linux-nested.yaml")
THIS_MACHINE = str(FACTS / "this-machine-paravirtual-kvm.json")
NOBODY = 65534


@pytest.fixture(autouse=True)
def _lab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("NESTLAB_HOME", str(home))
    return home


def render(out: Path, lab: str = LINUX, host_facts: str = THIS_MACHINE) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["render", "-f", lab, "--facts", host_facts,
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
    plan = make_plan(lab, check_host(facts("this-machine-paravirtual-kvm"), lab).decide(lab.name),
                     _lab_home / "labs" / "linux-nested", KEY)
    assert (tmp_path / "out" / L2_XML).read_text() == render_guest_domain_xml(
        plan, plan.hosts[0], plan.hosts[0].guests[0])  # what provisioning puts in the L1


def test_before_the_first_up_the_key_is_an_obvious_placeholder(tmp_path: Path) -> None:
    assert render(tmp_path / "out")[0] == 0
    assert l2_authkey(tmp_path / "out") == PUBLIC_KEY_PLACEHOLDER
    assert "first-up" in PUBLIC_KEY_PLACEHOLDER and " " not in PUBLIC_KEY_PLACEHOLDER


WINDOWS = str(EXAMPLES / "windows-hyperv.yaml")
KVM_HOST = str(FACTS / "intel-nested-y.json")


@pytest.mark.parametrize(("lab", "host_facts"), [
    ("windows-hyperv", KVM_HOST),
    ("windows-server-2019", str(FACTS / "amd-nested-1.json")),
    ("windows-server-2022", KVM_HOST),
    ("windows-server-2022", str(FACTS / "amd-nested-1.json"))])
def test_windows_render_writes_the_l1s_medium_and_scripts(tmp_path: Path, lab: str,
                                                          host_facts: str) -> None:
    code, out, _ = render(tmp_path / "out", str(EXAMPLES / f"{lab}.yaml"), host_facts)
    assert code == 0
    written = sorted(p.relative_to(tmp_path / "out").as_posix()
                     for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == sorted([
        f"l0/domains/nestlab-{lab}-hv1.xml",
        f"l0/networks/nestlab-{lab}-lab.xml",
        "l1/hv1/answer-medium/autounattend.xml",
        "l1/hv1/answer-medium/winrm.ps1",
        *(f"l1/hv1/windows/{name}.ps1" for name in WINDOWS_PROVISION_SCRIPTS)])
    assert f"wrote {len(written)} files" in out
    for script in (tmp_path / "out" / "l1").rglob("*.ps1"):
        assert syntax_errors(script.read_text()) == [], script
    answer = (tmp_path / "out/l1/hv1/answer-medium/autounattend.xml").read_text()
    ET.fromstring(answer)
    assert "&lt;password of hv1: generated at the first up" in answer  # a placeholder


def test_windows_render_never_reads_the_password(tmp_path: Path, _lab_home: Path) -> None:
    keys = _lab_home / "labs" / "windows-hyperv" / "keys"
    keys.mkdir(parents=True)
    password = "Real-Pw-of-hv1-42"
    (keys / "hv1.password").write_text(password)
    opened: list[str] = []
    watching = True

    def audit(event: str, args: tuple[object, ...]) -> None:
        if watching and event == "open" and str(args[0]).endswith(".password"):
            opened.append(str(args[0]))

    sys.addaudithook(audit)  # hooks cannot be removed: this one stops watching below
    try:
        code, _, _ = render(tmp_path / "out", WINDOWS, KVM_HOST)
    finally:
        watching = False
    assert code == 0
    assert opened == []
    secrets = [password, encode_password(password, "AdministratorPassword"),
               encode_password(password, "Password")]
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert not any(s in path.read_text() for s in secrets), path
