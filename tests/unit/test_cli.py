"""The command line as a user meets it: exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nestlab import __version__, report
from nestlab.cli import main
from nestlab.host.check import check_host
from nestlab.host.facts import HostFacts
from nestlab.lab.labfile import load_lab
from tests.conftest import EXAMPLES, FACTS
from tests.fakes.lab import fake_home
from tests.fakes.windows_iso import image_names, wim_with_images, write_windows_iso

LINUX = str(EXAMPLES / "linux-nested.yaml")
WINDOWS = str(EXAMPLES / "windows-hyperv.yaml")
THIS_MACHINE = str(FACTS / "this-machine-paravirtual-kvm.json")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_version_and_help() -> None:
    assert run("--version") == (0, f"nestlab, version {__version__}\n", "")
    code, out, _ = run("--help")
    assert code == 0
    for command in ("check", "facts", "render", "schema"):
        assert command in out


def test_check_json_tcg_host_linux_lab_exits_0() -> None:
    code, out, _ = run("check", "-f", LINUX, "--facts", THIS_MACHINE, "--sandbox", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["accel"] == "tcg" and report["can_run"] is True
    kvm = next(c for c in report["checks"] if c["name"] == "kvm-device")
    assert "paravirtual" in kvm["detail"]


def test_check_says_cannot_run_where_libvirt_does_not_answer() -> None:
    # This machine's host libvirtd was not running when its facts were recorded: a lab
    # can run here only in a sandbox.
    code, out, _ = run("check", "-f", LINUX, "--facts", THIS_MACHINE, "--json")
    report = json.loads(out)
    assert code == 1
    assert report["can_run"] is False
    libvirt = next(c for c in report["checks"] if c["name"] == "libvirt")
    assert libvirt["status"] == "fail" and "does not answer" in libvirt["detail"]


def test_check_windows_lab_on_tcg_host_exits_1_with_reason() -> None:
    code, out, _ = run("check", "-f", WINDOWS, "--facts", THIS_MACHINE)
    assert code == 1
    assert "windows-accel" in out
    assert "cannot run lab windows-hyperv" in out


def test_check_prints_fixes() -> None:
    code, out, _ = run("check", "-f", LINUX, "--facts", str(FACTS / "intel-nested-n.json"))
    assert code == 0
    assert "options kvm_intel nested=1" in out


def test_bad_lab_file_exits_2_without_traceback(tmp_path: Path) -> None:
    lab = tmp_path / "nestlab.yaml"
    lab.write_text(Path(LINUX).read_text().replace("memory: 3GiB", "memory: 3 apples"))
    code, out, err = run("check", "-f", str(lab), "--facts", THIS_MACHINE)
    assert code == 2
    assert out == ""
    assert f"{lab}:10: hosts[0].memory: expected a size with a unit" in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    lab = tmp_path / "nestlab.yaml"
    lab.write_text("lab: [")
    result = CliRunner().invoke(main, ["--debug", "check", "-f", str(lab)])
    assert result.exception is not None
    assert type(result.exception).__name__ == "LabFileError"


def test_bad_facts_file_exits_2(tmp_path: Path) -> None:
    facts = tmp_path / "facts.json"
    facts.write_text("{}")
    code, _, err = run("check", "-f", LINUX, "--facts", str(facts))
    assert code == 2
    assert "not a nestlab facts file" in err


def test_render_writes_files(tmp_path: Path) -> None:
    code, out, _ = run("render", "-f", LINUX, "--facts", THIS_MACHINE,
                       "--out", str(tmp_path), "--json")
    files = json.loads(out)["files"]
    assert code == 0
    assert len(files) == 4
    assert all(Path(f).is_file() for f in files)


def test_render_refuses_a_lab_the_host_cannot_run(tmp_path: Path) -> None:
    code, _, err = run("render", "-f", WINDOWS, "--facts", THIS_MACHINE, "--out", str(tmp_path))
    assert code == 1
    assert "cannot run lab 'windows-hyperv'" in err
    assert list(tmp_path.iterdir()) == []


def test_schema_is_json_schema() -> None:
    code, out, _ = run("schema")
    schema = json.loads(out)
    assert code == 0
    assert schema["title"] == "Lab"
    assert set(schema["required"]) == {"lab", "networks", "hosts"}


def test_check_without_lab_checks_the_host(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run("check", "--facts", str(FACTS / "intel-nested-y.json"), "--json")
    assert code == 0
    assert json.loads(out)["lab"] is None


def test_facts_json_round_trips(tmp_path: Path) -> None:
    code, out, _ = run("--connect", "qemu+unix:///system?socket=/nonexistent/sock",
                       "facts", "--json")
    assert code == 0
    recorded = tmp_path / "facts.json"
    recorded.write_text(out)
    code, checked, _ = run("check", "-f", LINUX, "--facts", str(recorded), "--json")
    # The decision from the recorded file is the decision from the facts as read.
    expected = check_host(HostFacts.model_validate_json(out), load_lab(LINUX), "host")
    assert code == (0 if expected.can_run else 1)
    assert json.loads(checked) == json.loads(
        json.dumps(report.check_json(expected, load_lab(LINUX))))
    # ... and it was made from the file: libvirt at the socket we named does not answer.
    libvirt = next(c for c in json.loads(checked)["checks"] if c["name"] == "libvirt")
    assert libvirt["status"] != "ok"


def facts_with(tmp_path: Path, **cpu: str) -> str:
    data = json.loads(Path(THIS_MACHINE).read_text())
    data["cpu"].update(cpu)
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(data))
    return str(path)


CONTROL = ("\x1b", "\x07", "\x9b", "\u202e")


def test_host_strings_reach_the_terminal_escaped(tmp_path: Path) -> None:
    facts = facts_with(tmp_path, model_name="\x1b]0;pwned\x07 Xeon \x9b2J\u202e")
    code, out, _ = run("check", "-f", LINUX, "--facts", facts, "--sandbox")
    assert code == 0
    assert "\\x1b]0;pwned\\x07 Xeon \\x9b2J\\u202e" in out
    assert not any(c in out for c in CONTROL)


def test_keys_from_files_reach_the_terminal_escaped(tmp_path: Path) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text(Path(LINUX).read_text() + '"\\x1b]0;pwned\\x07": 1\n')
    code, out, err = run("check", "-f", str(lab), "--facts", THIS_MACHINE)
    assert (code, out) == (2, "")
    assert f"{lab}:20: \\x1b]0;pwned\\x07: unknown key" in err
    facts = json.loads(Path(THIS_MACHINE).read_text()) | {"\x1b[2J\x9b": 1}
    (tmp_path / "facts.json").write_text(json.dumps(facts))
    code, _, err = run("check", "--facts", str(tmp_path / "facts.json"))
    assert code == 2
    assert "\\x1b[2J\\x9b: Extra inputs are not permitted" in err
    assert not any(c in err for c in CONTROL)


def test_a_facts_file_that_is_not_utf8_exits_2(tmp_path: Path) -> None:
    facts = tmp_path / "facts.json"
    facts.write_bytes(Path(THIS_MACHINE).read_bytes().replace(b"Intel(R)", b"Intel\xae"))
    code, _, err = run("check", "-f", LINUX, "--facts", str(facts))
    assert code == 2
    assert err.startswith(f"nestlab: error: {facts}: the facts file is not UTF-8 text")


def test_plan_json_for_a_recorded_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path / "cache"))
    code, out, err = run("plan", "-f", WINDOWS, "--facts", str(FACTS / "intel-nested-y.json"),
                         "--json")
    assert code == 0, err
    preview = json.loads(out)
    assert set(preview) == {"lab", "accel", "uri", "sandbox", "node", "changes", "counts",
                            "steps"}
    assert preview["node"] is None
    assert (preview["lab"], preview["accel"], preview["changes"]) == ("windows-hyperv", "kvm",
                                                                      [])
    steps = {(s["guest"], s["step"]): s["state"] for s in preview["steps"]}
    assert steps[("L0", "image windows-server-2016")] == "create"  # no image in this cache
    assert steps[("hv1", "disk")] == "create"
    assert steps[("hv1", "winrm")] == "unknown"
    assert steps[("L0", "network nestlab-windows-hyperv-lab")] == "unknown"  # not this host
    assert sum(preview["counts"].values()) == len(preview["steps"])
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("year", [2019, 2022])
def test_a_lab_of_a_later_windows_server_uses_its_own_base_image(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, year: int) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path / "cache"))
    code, out, err = run("plan", "-f", str(EXAMPLES / f"windows-server-{year}.yaml"),
                         "--facts", str(FACTS / "amd-nested-1.json"), "--json")
    assert code == 0, err
    steps = {(s["guest"], s["step"]): s["state"] for s in json.loads(out)["steps"]}
    assert steps[("L0", f"image windows-server-{year}")] == "create"
    assert ("L0", "image windows-server-2016") not in steps


@pytest.mark.parametrize("name", ["windows-server-2019", "windows-server-2022"])
def test_image_build_of_a_windows_server_needs_its_iso(name: str) -> None:
    code, _, err = run("image", "build", name)
    assert code == 2
    assert err.startswith(f"nestlab: error: building {name} needs --iso PATH")


def test_image_build_of_a_windows_server_with_other_images_is_refused() -> None:
    code, _, err = run("image", "build", "prime", "windows-server-2022", "--iso", "x.iso")
    assert code == 2
    assert err.startswith("nestlab: error: build windows-server-2022 on its own")
    assert "Traceback" not in err


def test_image_build_of_several_cached_images_says_each_is_up_to_date(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_home(tmp_path, monkeypatch)
    code, out, err = run("image", "build", "prime", "debian-12", "prime")
    assert code == 0, err
    assert [line.split(":")[0] for line in out.splitlines()] == [
        "prime is up to date", "debian-12 is up to date"]
    code, out, _ = run("image", "build", "prime", "debian-12", "--json")
    assert [(i["name"], i["built_now"]) for i in json.loads(out)] == [
        ("prime", False), ("debian-12", False)]


def test_image_identify_names_the_base_image_an_iso_builds(tmp_path: Path) -> None:
    iso = write_windows_iso(tmp_path / "eval.iso",
                            wim_with_images(image_names("Windows Server 2022")))
    assert run("image", "identify", "--iso", str(iso)) == (0, "windows-server-2022\n", "")
    code, out, _ = run("image", "identify", "--iso", str(iso), "--json")
    assert code == 0
    assert json.loads(out) == {"image": "windows-server-2022",
                               "install_images": image_names("Windows Server 2022")}


def test_image_identify_of_no_windows_iso_is_exit_2_with_a_hint(tmp_path: Path) -> None:
    not_iso = tmp_path / "notes.txt"
    not_iso.write_text("hello\n" * 1000)
    code, out, err = run("image", "identify", "--iso", str(not_iso))
    assert (code, out) == (2, "")
    assert err.startswith(f"nestlab: error: {not_iso}: not an ISO image that can be read")
    assert "OS=windows-server-2022" in err
    assert "Traceback" not in err
