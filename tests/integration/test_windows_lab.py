"""A Windows lab's one-guest commands end to end: L0 on libvirt's test driver, the L1 a
FAKE Hyper-V L1 (tests/fakes/hyperv.py) reached through the Windows driver."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import libvirt
import pytest
from click.testing import CliRunner

from nestlab.build.images import BuiltImage, find_image, images_root, write_manifest
from nestlab.cli import main
from nestlab.commands.up import up
from nestlab.drivers.windows import WindowsDriver
from nestlab.host.facts import HostFacts
from nestlab.lab.labfile import load_lab
from nestlab.plan import HostPlan
from nestlab.progress import Reporter
from nestlab.provision import windows
from nestlab.virt import objects
from tests.conftest import EXAMPLES, facts
from tests.fakes.hyperv import FakeHyperVL1

LAB_FILE = EXAMPLES / "windows-hyperv.yaml"


def intel_host(_uri: str) -> HostFacts:
    return facts("intel-nested-y")


@pytest.fixture
def hyperv(monkeypatch: pytest.MonkeyPatch, l0: libvirt.virConnect,
           home: Path) -> dict[str, FakeHyperVL1]:
    """The FAKE Hyper-V L1s by name after `up` of the example lab."""
    return up_with_fake_l1s(monkeypatch, home, LAB_FILE)


def up_with_fake_l1s(monkeypatch: pytest.MonkeyPatch, home: Path, lab_file: Path,
                     reporter: Reporter | None = None) -> dict[str, FakeHyperVL1]:
    """`up` of a Windows lab on the test driver, its L1s FAKE Hyper-V L1s (returned by
    name), with a cached Windows image; provisioning's waits for reboots and heartbeats
    take no time."""
    prime = find_image("prime")
    assert prime is not None
    for name in ("isolinux.bin", "ldlinux.c32"):  # stand-ins: the ISO is only copied
        (prime.path / name).write_bytes(name.encode() * 512)
    lab = load_lab(lab_file)
    for image in sorted({host.base_image for host in lab.hosts}):
        folder = images_root() / image / "eval"
        folder.mkdir(parents=True)
        disk = folder / "disk.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"],
                       check=True)
        write_manifest(folder, BuiltImage(name=image, key="eval", path=folder, kernel=None,
                                          initrd=None, disk=disk, size=1, seconds=0.0,
                                          built="2026-01-01T00:00:00Z"))
    l1s: dict[str, FakeHyperVL1] = {}

    def session(_self: WindowsDriver, host: HostPlan) -> FakeHyperVL1:
        return l1s.setdefault(host.name, FakeHyperVL1(host.name, heartbeat_after_polls=1))

    monkeypatch.setattr(WindowsDriver, "session", session)
    monkeypatch.setattr(windows, "_sleep", lambda _s: None)
    lab_dir = home / "labs" / lab.name
    up(lab, lab_file, lab_dir, "test:///l0", False, intel_host,
       reporter or Reporter(lab.name, lab_dir, "up", show=False))
    return l1s


def test_up_of_a_windows_server_2022_lab_boots_that_base_image(
        monkeypatch: pytest.MonkeyPatch, l0: libvirt.virConnect, home: Path) -> None:
    l1s = up_with_fake_l1s(monkeypatch, home, EXAMPLES / "windows-server-2022.yaml")
    assert {n: vm.state for n, vm in l1s["hv1"].vms.items()} == {"prime1": "Running",
                                                                "prime2": "Running"}
    disk = home / "labs" / "windows-server-2022" / "hosts" / "hv1" / "disk.qcow2"
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(disk)],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename"] == str(images_root() / "windows-server-2022" / "eval" /
                                           "disk.qcow2")
    xml = l0.lookupByName("nestlab-windows-server-2022-hv1").XMLDesc(0)
    assert "(Windows Server 2022, Hyper-V)</title>" in xml


def nestlab(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args[:1], "--lab", "windows-hyperv", *args[1:]])
    return result.exit_code, result.stdout, result.stderr


def test_restart_of_a_hyperv_l2_is_a_new_boot_proven_by_heartbeat(
        hyperv: dict[str, FakeHyperVL1]) -> None:
    l1 = hyperv["hv1"]
    code, out, err = nestlab("restart", "prime1", "--json")
    assert code == 0, err
    assert l1.vms["prime1"].boots == 2 and l1.vms["prime2"].boots == 1
    assert "guest-restart" in l1.calls
    assert [p["evidence"] for p in json.loads(out)["proofs"]] == [
        "Hyper-V says Running, heartbeat OK; its SSH port answers inside hv1"]


def test_rebuild_of_a_hyperv_l2_makes_its_vm_and_disk_again(
        hyperv: dict[str, FakeHyperVL1]) -> None:
    l1 = hyperv["hv1"]
    made = len(l1.creations)
    code, out, err = nestlab("rebuild", "prime2", "--json")
    assert code == 0, err
    assert json.loads(out)["removed"] == ["VM in hv1", "disk in hv1"]
    assert l1.creations[made:] == ["vm prime2"]
    assert l1.vms["prime2"].state == "Running"
    assert sorted(p["guest"] for p in json.loads(out)["proofs"]) == ["prime1", "prime2"]


def test_a_windows_guest_has_no_console_log_and_says_where_to_look(
        hyperv: dict[str, FakeHyperVL1]) -> None:
    code, _, err = nestlab("logs", "hv1")
    assert code == 1
    assert "hv1: a Windows L1 has no serial console log" in err
    assert "hint: `nestlab console hv1` says how to see its screen." in err


def test_restart_of_a_windows_l1_goes_through_ups_steps_again(
        hyperv: dict[str, FakeHyperVL1], l0: libvirt.virConnect) -> None:
    before = l0.lookupByName("nestlab-windows-hyperv-hv1").ID()
    code, out, err = nestlab("restart", "hv1", "--json")
    assert code == 0, err
    assert l0.lookupByName("nestlab-windows-hyperv-hv1").ID() != before
    result = json.loads(out)
    phases = [(t["phase"], t["outcome"]) for t in result["timings"] if t["guest"] == "hv1"]
    assert phases == [("restart on L0", "changed"), ("disk", "ok"), ("define + start", "ok"),
                      ("winrm", "ok"), ("L2 prime ISOs", "ok"), ("Hyper-V role", "ok"),
                      ("L2 network", "ok")]
    assert sorted(p["guest"] for p in result["proofs"]) == ["prime1", "prime2"]


@pytest.fixture
def host_refuses_evmcs(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """L0 refuses to start a domain with eVMCS on, as QEMU does on Intel hosts without
    APICv; returns the names of the domains it refused and the progress lines of up."""
    refused: list[str] = []
    said: list[str] = []
    monkeypatch.setattr(Reporter, "say", lambda _self, guest, msg: said.append(f"{guest}: {msg}"))
    real_create = libvirt.virDomain.create

    def create(dom: libvirt.virDomain) -> int:
        if "<evmcs state='on'/>" in dom.XMLDesc(0):
            refused.append(dom.name())
            raise libvirt.libvirtError("internal error: process exited while connecting to "
                                       "monitor: Hyper-V enlightened VMCS (hv-evmcs) is not "
                                       "supported by kernel")
        return real_create(dom)

    monkeypatch.setattr(libvirt.virDomain, "create", create)
    return refused, said


def test_an_l1_the_host_refuses_evmcs_for_starts_without_it_and_says_so(
        host_refuses_evmcs: tuple[list[str], list[str]], hyperv: dict[str, FakeHyperVL1],
        l0: libvirt.virConnect) -> None:
    refused, said = host_refuses_evmcs
    assert refused == ["nestlab-windows-hyperv-hv1"]  # the plan asked for it
    dom = l0.lookupByName("nestlab-windows-hyperv-hv1")
    assert dom.isActive()
    assert "evmcs" not in dom.XMLDesc(0)
    assert "<vapic state='on'/>" in dom.XMLDesc(0)  # the other enlightenments stay
    assert hyperv["hv1"].vms["prime1"].state == "Running"
    assert any(line.startswith("hv1: this host refuses eVMCS") for line in said)


def test_the_l1s_screen_has_the_labs_vnc_password_kept_0600(
        hyperv: dict[str, FakeHyperVL1], l0: libvirt.virConnect, home: Path) -> None:
    kept = home / "labs" / "windows-hyperv" / "keys" / "hv1.vnc"
    assert kept.stat().st_mode & 0o777 == 0o600
    password = kept.read_text().strip()
    assert len(password) == 8 and password.isalnum()
    dom = l0.lookupByName("nestlab-windows-hyperv-hv1")
    assert f"passwd='{password}'" in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
    assert password not in dom.XMLDesc(0)  # libvirt shows it to no one else


def test_console_of_a_windows_l1_says_where_its_screen_is_and_its_password(
        hyperv: dict[str, FakeHyperVL1], l0: libvirt.virConnect, home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # libvirt's test driver gives no VNC port (it shows -1): this one is what QEMU's
    # autoport would give; reading it from real XML is tested in tests/unit.
    monkeypatch.setattr(objects, "vnc_port", lambda dom: 5901 if dom.isActive() else None)
    password = (home / "labs" / "windows-hyperv" / "keys" / "hv1.vnc").read_text().strip()
    code, out, err = nestlab("console", "hv1")
    assert code == 0, err
    assert out.startswith(f"hv1: its screen is VNC on 127.0.0.1:5901, password {password} ")
    assert "vncviewer 127.0.0.1:5901" in out
    code, _, err = nestlab("console", "prime1")
    assert code == 1 and "prime1: a Hyper-V L2 has no console nestlab reaches" in err
    l0.lookupByName("nestlab-windows-hyperv-hv1").destroy()
    code, _, err = nestlab("console", "hv1")
    assert code == 1 and "hv1 is not running: it has no screen to show" in err


def test_a_bridged_windows_lab_comes_up_through_the_session_its_switch_drops(
        monkeypatch: pytest.MonkeyPatch, l0: libvirt.virConnect, home: Path,
        tmp_path: Path) -> None:
    lab_file = tmp_path / "windows-bridged.yaml"
    lab_file.write_text(LAB_FILE.read_text().replace(
        "lab: windows-hyperv", "lab: windows-bridged").replace(
        "      mode: nat\n      cidr: 192.168.100.0/24\n", "      mode: bridged\n"))
    reporter = Reporter("windows-bridged", tmp_path, "up", show=False)
    l1 = up_with_fake_l1s(monkeypatch, home, lab_file, reporter)["hv1"]
    assert l1.switches == {"nestlab": {"mode": "bridged"}}
    assert l1.calls.count("guest-network") == 2  # lost with the network, then confirmed
    assert [(t["phase"], t["outcome"]) for t in reporter.timings
            if t["guest"] == "hv1" and t["phase"] == "L2 network"] == [("L2 network", "changed")]
    assert sorted(vm.state for vm in l1.vms.values()) == ["Running", "Running"]
