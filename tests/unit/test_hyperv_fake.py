"""The FAKE Hyper-V L1 (tests/fakes/hyperv.py) behaves like the real thing where
bugs live: these tests pin each behaviour it copies to its source."""

from __future__ import annotations

import ast
import inspect
import json
from importlib import resources
from pathlib import Path

import pytest
from pypsrp.client import Client
from pypsrp.exceptions import WinRMError

from nestlab.commands import status
from nestlab.host.check import check_host
from nestlab.plan import make_plan
from nestlab.progress import Reporter
from nestlab.provision import windows
from nestlab.render import powershell_script, powershell_script_names
from nestlab.transport.base import TransportError
from nestlab.transport.winrm import WinRMTransport
from tests.conftest import example, facts
from tests.fakes.hyperv import FakeHyperVL1
from tests.fakes.runspace import FakeRunspaceFactory
from tests.powershell import json_objects


def test_pypsrp_copy_moves_a_temporary_file_and_makes_no_folder() -> None:
    copy = (resources.files("pypsrp") / "pwsh_scripts" / "copy.ps1").read_text()
    assert "[System.IO.Path]::GetTempFileName()" in copy
    assert "[System.IO.File]::Move($path, $output_path)" in copy
    for folder_maker in ("New-Item", "CreateDirectory", "mkdir"):
        assert folder_maker not in copy
    assert '_handle_powershell_error(powershell, "Failed to copy file")' in inspect.getsource(
        Client.copy)


def test_winrm_transport_put_turns_pypsrps_error_into_a_transport_error() -> None:
    class FailingCopy(FakeRunspaceFactory):
        def copy(self, local: Path, remote: str) -> None:
            raise WinRMError("Failed to copy file: Could not find a part of the path")

    t = WinRMTransport("hv1", "10.78.0.10", "Administrator", "pw", factory=FailingCopy(),
                       sleep=lambda _s: None)
    try:
        with pytest.raises(TransportError, match=r"hv1: cannot copy null to C:\\missing\\x.iso: "
                                                 "WinRMError: Failed to copy file"):
            t.put(Path("/dev/null"), "C:\\missing\\x.iso")
    finally:
        t.close()


def test_put_needs_the_target_folder(tmp_path: Path) -> None:
    local = tmp_path / "prime.iso"
    local.write_bytes(b"iso")
    l1 = FakeHyperVL1()
    with pytest.raises(TransportError,
                       match=r"Could not find a part of the path 'C:\\nestlab"):
        l1.put(local, "C:\\nestlab\\prime1\\prime.iso")
    assert l1.files == {}
    l1.put(local, "C:\\Windows\\Temp\\prime.iso")  # a folder every L1 has
    assert l1.run_script("file-hash", powershell_script("file-hash"),
                         {"Path": "c:\\windows\\temp\\PRIME.ISO"}).stdout.count("sha256") == 1


def test_folders_come_only_from_scripts_that_make_them(tmp_path: Path) -> None:
    local = tmp_path / "prime.iso"
    local.write_bytes(b"iso")
    l1 = FakeHyperVL1()
    first = l1.run_script("guest-folder", powershell_script("guest-folder"),
                          {"Path": "C:\\nestlab\\prime1"})
    again = l1.run_script("guest-folder", powershell_script("guest-folder"),
                          {"Path": "C:\\nestlab\\prime1"})
    assert (first.stdout, again.stdout) == ('{"created": true}', '{"created": false}')
    assert {"c:\\nestlab", "c:\\nestlab\\prime1"} <= l1.folders  # -Force makes the parents
    l1.put(local, "C:\\nestlab\\prime1\\prime.iso")
    assert "c:\\nestlab\\prime1\\prime.iso" in l1.files


# -- the JSON each script prints, the fake's answers, and what nestlab reads ----------------
WINRM_SCRIPTS = sorted(set(powershell_script_names()) - {"build", "winrm"})
"""Scripts sent over WinRM (build.ps1 and winrm.ps1 run from answer media at a logon)."""
DYNAMIC_KEYS = {"guest-states"}
"""Scripts whose object is keyed by their input (the L2 names), not by a literal."""
READERS = [Path(windows.__file__), Path(status.__file__)]
"""The modules that read what run_json returns."""


@pytest.fixture(scope="module")
def answered(tmp_path_factory: pytest.TempPathFactory) -> FakeHyperVL1:
    """A fake L1 taken through every script: up on a fresh L1, proof, status, pause and
    resume around a save, restart and rebuild of an L2, and down."""
    tmp = tmp_path_factory.mktemp("answers")
    lab = example("windows-hyperv")
    host = make_plan(lab, check_host(facts("intel-nested-y"), lab).decide(lab.name), tmp, "ssh-ed25519 K").hosts[0]
    isos = {}
    for guest in host.guests:
        isos[guest.name] = tmp / f"{guest.name}.iso"
        isos[guest.name].write_bytes(guest.name.encode())
    l1 = FakeHyperVL1(heartbeat_after_polls=0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(windows, "_sleep", lambda _s: None)
        windows.provision(l1, host, isos, Reporter(lab.name, tmp, "up", show=False), 600)
        windows.prove(l1, host, host.guests[0], 600, lambda _m: None)
    windows.run_json(l1, "guest-states", Names=[g.name for g in host.guests])
    windows.pause_guests(l1, host)
    windows.resume_guests(l1, host)
    windows.stop_guests(l1, host, 30)
    windows.restart_guest(l1, host.guests[0])
    windows.remove_guest(l1, host.guests[1])
    windows.remove_guests(l1, host)
    return l1


def test_the_fake_handles_every_script_sent_over_winrm(answered: FakeHyperVL1) -> None:
    assert sorted({c for c in answered.calls if not c.startswith("put ")}) == WINRM_SCRIPTS


@pytest.mark.parametrize("script", WINRM_SCRIPTS)
def test_the_fake_answers_with_the_keys_the_script_prints(answered: FakeHyperVL1,
                                                          script: str) -> None:
    printed = json_objects(powershell_script(script))
    assert len(printed) <= 1, f"{script}.ps1 prints more than one JSON object"
    for _, parameters, value in (a for a in answered.answers if a[0] == script):
        if not printed:
            assert value is None
        elif printed[0] is None:
            assert script in DYNAMIC_KEYS
            assert set(value) == set(parameters["Names"])
        else:
            assert set(value) == printed[0]


def python_reads() -> dict[str, set[str]]:
    """Script -> the keys nestlab's code reads from what ``run_json`` returned for it:
    ``value["key"]``, ``value.get("key")`` and ``run_json(...)["key"]``."""
    reads: dict[str, set[str]] = {}
    for module in READERS:
        for function in ast.walk(ast.parse(module.read_text())):
            if not isinstance(function, ast.FunctionDef):
                continue
            holds: dict[str, str] = {}  # variable -> the script whose JSON it holds
            for node in ast.walk(function):
                if isinstance(node, ast.Assign) and (script := _run_json_script(node.value)):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            holds[target.id] = script
                            reads.setdefault(script, set())
            for node in ast.walk(function):
                if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                    source = _run_json_script(node.value) or (
                        holds.get(node.value.id) if isinstance(node.value, ast.Name) else None)
                    if source:
                        reads.setdefault(source, set()).add(str(node.slice.value))
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "get" and isinstance(node.func.value, ast.Name)
                        and node.func.value.id in holds and node.args
                        and isinstance(node.args[0], ast.Constant)):
                    reads[holds[node.func.value.id]].add(str(node.args[0].value))
    return reads


def _run_json_script(node: ast.expr) -> str | None:
    if not isinstance(node, ast.Call) or len(node.args) < 2:
        return None
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
        node.func, "id", None)
    script = node.args[1]
    if name == "run_json" and isinstance(script, ast.Constant) and isinstance(script.value, str):
        return script.value
    return None


def test_the_reader_finds_reads() -> None:
    reads = python_reads()
    assert reads["guest-proof"] == {"state", "heartbeat", "ssh"}
    assert "sha256" in reads["file-hash"]  # read with .get


@pytest.mark.parametrize("script", [s for s in WINRM_SCRIPTS if s not in DYNAMIC_KEYS])
def test_nestlab_reads_exactly_the_keys_the_script_prints(script: str) -> None:
    printed = json_objects(powershell_script(script))
    reads = python_reads()
    if not printed:
        assert script not in reads, f"{script}.ps1 prints no JSON, yet it is read as JSON"
        return
    assert reads.get(script, set()) == printed[0], (
        f"{script}.ps1 prints {sorted(printed[0])}; nestlab reads "
        f"{sorted(reads.get(script, set()))}")


# -- the role, the hypervisor and the switches -----------------------------------------------
def state(l1: FakeHyperVL1) -> dict[str, object]:
    return dict(json.loads(l1.run_script("hyperv-state", powershell_script("hyperv-state")).stdout))


def restart(l1: FakeHyperVL1) -> None:
    with pytest.raises(TransportError):
        l1.run_script("restart", powershell_script("restart"))


def test_a_kvm_guest_has_hypervisor_present_before_hyperv_runs() -> None:
    l1 = FakeHyperVL1()
    assert state(l1) == {"role": "Available", "hypervisor_started": False,
                         "hypervisor_error": "", "vmms": "absent",
                         "hypervisor_present": True, "boot_time": "boot-1"}


def test_the_hypervisor_starts_at_a_boot_with_the_role_only_when_it_can() -> None:
    for l1, error in ((FakeHyperVL1(answers_after_restart=0), ""),
                      (FakeHyperVL1(vmx=False, wmi_vmx=True, answers_after_restart=0),
                       "Hypervisor launch failed; Either VMX not present or not enabled in "
                       "BIOS.")):
        l1.run_script("install-hyperv", powershell_script("install-hyperv"))
        restart(l1)
        assert state(l1)["hypervisor_started"] is False  # InstallPending: no launch yet
        restart(l1)
        seen = state(l1)
        assert (seen["role"], seen["hypervisor_started"], seen["hypervisor_error"]) == (
            "Installed", not error, error)
        assert seen["vmms"] == "Running"  # vmms runs with the role, hypervisor or not


def test_only_an_external_switch_drops_the_session_until_reconnect() -> None:
    network = powershell_script("guest-network")
    l1 = FakeHyperVL1(role="Installed")
    l1.run_script("guest-network", network, {"Name": "n", "Mode": "nat", "HostAddress": "10.0.0.1",
                                             "PrefixLength": 24, "Prefix": "10.0.0.0/24"})
    l1.run_script("guest-network", network, {"Name": "i", "Mode": "internal",
                                             "HostAddress": "10.0.1.1", "PrefixLength": 24})
    assert not l1.session_lost
    with pytest.raises(TransportError, match="lost the WinRM session during guest-network"):
        l1.run_script("guest-network", network, {"Name": "b", "Mode": "bridged"})
    assert "b" in l1.switches  # made before the network went away
    with pytest.raises(TransportError, match="off the network"):
        state(l1)
    l1.reconnect(60)
    assert json.loads(l1.run_script("guest-network", network,
                                    {"Name": "b", "Mode": "bridged"}).stdout) == {"created": []}


def test_an_external_switch_may_answer_and_lose_the_session_at_the_next_call() -> None:
    network = powershell_script("guest-network")
    l1 = FakeHyperVL1(role="Installed", switch_answers_before_drop=True)
    made = l1.run_script("guest-network", network, {"Name": "b", "Mode": "bridged"})
    assert json.loads(made.stdout) == {"created": ["switch"]}
    with pytest.raises(TransportError, match="off the network"):
        state(l1)
    l1.reconnect(60)
    assert state(l1)["role"] == "Installed"
