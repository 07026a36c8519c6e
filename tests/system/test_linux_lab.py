"""The example Linux lab for real, in a sandbox: an L1 under QEMU with emulated SVM,
KVM inside it, an L2 prime proven over SSH. The tests run in order and share one lab.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
import testinfra

from nestlab.provision.linux import PER_FEATURE_CPU_READ, QEMU_PROBE
from tests.conftest import EXAMPLES
from tests.system.conftest import Nestlab

pytestmark = pytest.mark.system

LAB_FILE = str(EXAMPLES / "linux-nested.yaml")
LAB = "linux-nested"
NETNS = f"nestlab-{LAB}"


def events(lab_dir: Path) -> list[dict[str, object]]:
    path = lab_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def lab_dir(nestlab_home: Path, nestlab: Nestlab) -> Iterator[Path]:
    """The shared lab's folder; whatever happens to the tests, the lab is taken down."""
    yield nestlab_home / "labs" / LAB
    if (nestlab_home / "labs" / LAB).exists():
        nestlab("down", "--lab", LAB, "--purge", timeout=300)
    assert NETNS not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                       text=True, check=True).stdout


def l1_vendor_module(nestlab: Nestlab) -> str:
    """kvm_amd or kvm_intel: whichever the L1 loaded (under tcg, emulated SVM: kvm_amd)."""
    for module in ("kvm_amd", "kvm_intel"):
        if nestlab("exec", "-f", LAB_FILE, "kvm1", "--", "test", "-d",
                   f"/sys/module/{module}").returncode == 0:
            return module
    pytest.fail("the L1 loaded neither kvm_amd nor kvm_intel")


def test_killed_up_is_resumed_and_a_second_up_refused(
    nestlab: Nestlab, images: None, lab_dir: Path, tmp_path: Path
) -> None:
    log = (tmp_path / "first-up.log").open("w")
    first = subprocess.Popen(nestlab.argv("up", "--sandbox", "-f", LAB_FILE), env=nestlab.env,
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: (lab_dir / "lock").exists() and (lab_dir / "lock").read_text(), 60,
                   "the first up to take the lab's lock")
        second = nestlab("up", "--sandbox", "-f", LAB_FILE, timeout=60)
        assert second.returncode == 1
        assert "is busy: `nestlab up`" in second.stderr

        # Kill it hard once provisioning inside the L1 has begun.
        wait_until(lambda: any(e["phase"] == "kvm in L1" for e in events(lab_dir)), 900,
                   "provisioning to start")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert not any(str(e["phase"]).startswith("proven") for e in events(lab_dir))

    resumed = nestlab.ok("up", "--sandbox", "-f", LAB_FILE, "--json")
    report = json.loads(resumed.stdout)
    assert [p["guest"] for p in report["proofs"]] == ["prime1"]
    assert report["proofs"][0]["address"] == "192.168.100.10"
    phases = {(t["guest"], t["phase"]) for t in report["timings"]}
    assert ("prime1", "proven (SSH via kvm1)") in phases


def test_l1_and_l2_with_testinfra_through_the_plugin(
        nestlab: Nestlab, lab_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pytest plugin's hosts (what a course's tests get), attached to the shared lab."""
    from nestlab.testing import LabSession

    monkeypatch.setenv("NESTLAB_HOME", nestlab.env["NESTLAB_HOME"])
    module = l1_vendor_module(nestlab)
    session = LabSession(Path(LAB_FILE), reuse=True)
    lab = session.start()
    try:
        l1, l2 = lab.host("kvm1"), lab.host("prime1")
        assert l1.check_output("hostname") == "kvm1"
        assert l1.check_output("stat -c %F /dev/kvm") == "character special file"
        nested = l1.file(f"/sys/module/{module}/parameters/nested").content_string.strip()
        assert nested in ("1", "Y")
        assert l1.service("libvirtd").is_running
        flag = "svm" if module == "kvm_amd" else "vmx"
        assert flag in l1.file("/proc/cpuinfo").content_string.split()
        domains = l1.check_output("virsh list --name --state-running")
        assert "nestlab-linux-nested-prime1" in domains.split()

        assert l2.check_output("hostname") == "prime1"
        assert l2.check_output("ip -4 -o addr show scope global").split()[3] == \
            "192.168.100.10/24"
        assert "default via 192.168.100.1" in l2.check_output("ip route")
        assert l2.run("pidof dropbear").rc == 0  # busybox: no ps for testinfra's process module
        assert lab.exec("prime1", "sh", "-c", "exit 3").exit_status == 3
    finally:
        session.stop()
    assert (lab_dir / "hosts").exists()  # attached: the lab stays up


def test_the_openssh_config_reaches_the_l2_through_the_l1(
        nestlab: Nestlab, lab_dir: Path) -> None:
    config = nestlab.ok("ssh-config", "-f", LAB_FILE).stdout.strip()
    l2 = testinfra.get_host("paramiko://prime1", ssh_config=config)
    try:
        assert l2.check_output("hostname") == "prime1"
    finally:
        # The connection runs `nestlab _proxy` as its ProxyCommand: closed here, not when
        # pytest exits.
        l2.backend.client.close()


def test_verify_runs_the_built_in_checks_on_the_lab(nestlab: Nestlab, lab_dir: Path) -> None:
    report = json.loads(nestlab("verify", "-f", LAB_FILE, "--json").stdout)
    assert report["ok"] is True, report["tests"]
    assert report["counts"] == {"passed": 4, "failed": 0, "error": 0, "skipped": 0}


def test_up_again_changes_nothing(nestlab: Nestlab, lab_dir: Path) -> None:
    def l2_state() -> tuple[str, float]:
        domid = nestlab.ok("exec", "-f", LAB_FILE, "kvm1", "--", "virsh", "domid",
                           "nestlab-linux-nested-prime1").stdout.strip()
        uptime = float(nestlab.ok("exec", "-f", LAB_FILE, "prime1", "--", "cat",
                                  "/proc/uptime").stdout.split()[0])
        return domid, uptime

    domid, uptime = l2_state()
    again = json.loads(nestlab.ok("up", "--sandbox", "-f", LAB_FILE, "--json").stdout)
    # Only the routes step is skipped (the example's L2 network is nat); nothing changed.
    assert {t["phase"] for t in again["timings"] if t["outcome"] != "ok"} == {
        "routes to other L1s' L2s"}
    assert (again["changed"], again["failed"], again["skipped"]) == (0, 0, 1)
    assert again["ok"] == len(again["timings"]) - 1 > 5
    preview = json.loads(nestlab.ok("plan", "-f", LAB_FILE, "--json").stdout)
    assert preview["counts"]["create"] == 0, preview["steps"]
    assert preview["counts"]["present"] >= 6 and preview["changes"] == []
    domid_after, uptime_after = l2_state()
    assert domid_after == domid  # the same running L2, not a new one
    assert uptime_after > uptime
    # The L2 image was known by the list of its hashes, which the L1's own tools agree with.
    nestlab.ok("exec", "-f", LAB_FILE, "kvm1", "--", "sh", "-c",
               "cd /var/lib/nestlab/images/prime && sha256sum -c --strict SHA256SUMS")


def test_guests_boot_lean(nestlab: Nestlab, lab_dir: Path) -> None:
    """What the boot-time cuts rely on: the L1 and the L2 boot uncompressed kernels (PVH),
    nestlab's SSH commands start no logind session, no timer runs apt at boot, modules of
    unused devices are not loaded, libvirt found its firewall chains made at boot (it
    would have added a second jump to each otherwise) and the QEMU probe in place, and
    neither hostnamed nor polkit was started (~2.5 s of the emulated CPU)."""
    assert (lab_dir / "hosts" / "kvm1" / "vmlinuz").read_bytes()[:4] == b"\x7fELF"
    script = ("head -c 4 /var/lib/nestlab/images/prime/vmlinuz | od -An -c; "
              "cat /proc/self/cgroup; systemctl is-enabled apt-daily.timer || true; "
              "ls /sys/module | grep -c -x -e lpc_ich -e i2c_i801 -e cfg80211 -e pcspkr; "
              "iptables -S FORWARD | grep -e '-j LIBVIRT_' | tr '\\n' ' '; echo; "
              "test -s /var/cache/libvirt/qemu/capabilities/*.xml && echo probed; "
              "journalctl -b -q -o cat -u polkit -u systemd-hostnamed | grep -c ^Started || true")
    out = nestlab.ok("exec", "-f", LAB_FILE, "kvm1", "--", "sh", "-c", script).stdout
    elf, cgroup, apt, unused, jumps, probed, asked_polkit = out.strip().splitlines()
    assert elf.split() == ["177", "E", "L", "F"]
    assert cgroup.endswith("/ssh.service") and "session-" not in cgroup
    assert apt == "masked"
    assert unused == "0"
    assert jumps.split(" -A ") == ["-A FORWARD -j LIBVIRT_FWX", "FORWARD -j LIBVIRT_FWI",
                                   "FORWARD -j LIBVIRT_FWO "]
    assert probed == "probed"
    assert asked_polkit == "0"  # networkd does not set the name from the lease


def test_the_l1_updates_its_initramfs_as_debian_does(nestlab: Nestlab, lab_dir: Path) -> None:
    """The image build puts Debian's update-initramfs off while the packages go in
    (nestlab.build.images.INITRAMFS_AT_THE_END): in the L1 it is Debian's own again, not
    diverted and unchanged, so a kernel the lab's users install gets its initramfs."""
    script = ("dpkg-divert --list | grep -c update-initramfs; "
              # files that differ from the packages', the recipe's own conffiles aside
              "dpkg --verify initramfs-tools-core initramfs-tools | grep -v -c ' c /etc/'; "
              "ls /usr/sbin | grep -c update-initramfs; ls /boot | grep -c '^initrd.img-'")
    out = nestlab.ok("exec", "-f", LAB_FILE, "kvm1", "--", "sh", "-c", script).stdout
    assert out.split() == ["0", "0", "1", "1"]


def test_exec_returns_the_commands_exit_status(nestlab: Nestlab, lab_dir: Path) -> None:
    result = nestlab("exec", "-f", LAB_FILE, "prime1", "--", "sh", "-c",
                     "echo out; echo err >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")
    missing = nestlab("exec", "-f", LAB_FILE, "nosuch", "--", "true")
    assert missing.returncode == 2  # bad input, like a lab that does not exist
    assert "has no guest named 'nosuch'" in missing.stderr


def test_lab_files_are_private(lab_dir: Path) -> None:
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(lab_dir) == 0o700 and mode(lab_dir / "hosts" / "kvm1") == 0o700
    for name in ("disk.qcow2", "console.log"):
        assert mode(lab_dir / "hosts" / "kvm1" / name) == 0o600
    assert mode(lab_dir / "keys" / "id_ed25519") == 0o600


def test_status_reads_libvirt(nestlab: Nestlab, lab_dir: Path) -> None:
    status = json.loads(nestlab.ok("status", "-f", LAB_FILE, "--json").stdout)
    [host] = status["hosts"]
    assert (host["name"], host["state"], host["address"]) == ("kvm1", "running", "10.77.0.10")
    assert host["guests"] == [{"name": "prime1", "domain": "nestlab-linux-nested-prime1",
                               "address": "192.168.100.10", "state": "running"}]
    assert status["sandbox"] == {"netns": NETNS, "running": True}
    assert {t["phase"] for t in status["timings"]} >= {"ssh", "proven (SSH via kvm1)"}


def changed_steps(report: dict[str, object]) -> set[tuple[str, str]]:
    return {(t["guest"], t["phase"]) for t in report["timings"]  # type: ignore[attr-defined]
            if t["outcome"] == "changed"}


def up_again(nestlab: Nestlab, *args: str) -> dict[str, object]:
    report: dict[str, object] = json.loads(
        nestlab.ok("up", "--sandbox", "-f", *(args or (LAB_FILE,)), "--json").stdout)
    proofs = report["proofs"]
    assert [p["guest"] for p in proofs] == ["prime1"]  # type: ignore[attr-defined,index]
    assert nestlab.ok("exec", "-f", LAB_FILE, "prime1", "--", "hostname").stdout == "prime1\n"
    return report


def sandbox_domain(lab_dir: Path, name: str) -> libvirt.virDomain:
    """A domain of the lab's sandbox libvirtd, to change it behind nestlab's back."""
    socket = lab_dir / "sandbox" / "run" / "libvirt-sock"
    return libvirt.open(f"qemu+unix:///system?socket={socket}").lookupByName(name)


def test_an_l2_restarted_behind_nestlabs_back_keeps_its_host_key(nestlab: Nestlab) -> None:
    nestlab.ok("exec", "-f", LAB_FILE, "kvm1", "--", "virsh", "destroy",
               "nestlab-linux-nested-prime1")
    report = up_again(nestlab)
    # The L2 came back with the host key nestlab pinned (no "host key changed").
    assert changed_steps(report) == {("prime1", "define + start in kvm1")}
    # Heard announcing itself in this boot: its console log holds this boot alone (its
    # quiet kernel prints no banner that would tell its last boot's announcement apart).
    [proof] = report["proofs"]  # type: ignore[misc]
    assert "after it announced itself" in proof["evidence"]
    log = nestlab.ok("exec", "-f", LAB_FILE, "kvm1", "--", "cat",
                     "/var/lib/nestlab/guests/prime1/console.log").stdout
    assert log.count("nestlab-prime: up") == 1, log


def test_with_l0s_probe_libvirt_reads_the_l2s_cpu_in_a_few_calls(nestlab: Nestlab) -> None:
    """L0 puts its learned QEMU probe into an L1 without the flag that makes libvirt 9.0 read
    a started guest's CPU one property at a time (~400 QMP calls, 2.5 s in an emulated L1):
    libvirt takes the probe as it is (no probe of its own: the flag stays out) and starts
    the L2 with a few calls. The L1 is made as new for the probe: no probe, the L2 not
    defined, libvirtd stopped (it holds a probe in memory); its QMP replies are logged."""
    domain, probe = "nestlab-linux-nested-prime1", QEMU_PROBE
    log = "/var/log/libvirt/nestlab-test-qmp.log"
    nestlab.ok("exec", "-f", LAB_FILE, "kvm1", "--", "sh", "-e", "-c", f"""
        virsh -q destroy {domain}; virsh -q undefine {domain}; systemctl stop libvirtd
        rm -f {probe} {log}
        systemctl set-environment LIBVIRT_LOG_FILTERS=1:qemu.qemu_monitor_json \
            LIBVIRT_LOG_OUTPUTS=1:file:{log}""")
    try:
        report = up_again(nestlab)
        changed = changed_steps(report)
        assert {("kvm1", "QEMU probe from L0"), ("prime1", "define + start in kvm1")} <= changed
        assert ("kvm1", "QEMU probe kept on L0") not in changed  # libvirt took the one put
        out = nestlab.ok("exec", "-f", LAB_FILE, "kvm1", "--", "sh", "-c",
                         f"grep -c \"{PER_FEATURE_CPU_READ}\" {probe}; "
                         f"grep -c QEMU_MONITOR_RECV_REPLY {log}").stdout
        flags, replies = (int(n) for n in out.split())
        assert flags == 0
        assert 0 < replies < 100, f"{replies} QMP replies while libvirt started the L2"
    finally:
        nestlab.ok("exec", "-f", LAB_FILE, "kvm1", "--", "sh", "-c",
                   "systemctl unset-environment LIBVIRT_LOG_FILTERS LIBVIRT_LOG_OUTPUTS; "
                   "virt-admin daemon-log-filters ''")


def test_paused_guests_are_resumed_and_shown_paused(nestlab: Nestlab, lab_dir: Path) -> None:
    nestlab.ok("exec", "-f", LAB_FILE, "kvm1", "--", "virsh", "suspend",
               "nestlab-linux-nested-prime1")
    kvm1 = sandbox_domain(lab_dir, "nestlab-linux-nested-kvm1")
    kvm1.suspend()
    try:
        status = json.loads(nestlab.ok("status", "-f", LAB_FILE, "--json").stdout)
        assert status["hosts"][0]["state"] == "paused"
        assert status["hosts"][0]["guests"][0]["state"] == "unknown"  # its L1 cannot say
    finally:
        report = up_again(nestlab)  # the later tests need the lab running either way
    assert changed_steps(report) == {("kvm1", "define + start"),
                                     ("prime1", "define + start in kvm1")}


def test_a_killed_sandbox_libvirtd_is_started_again(nestlab: Nestlab) -> None:
    [daemon] = [pid for pid in subprocess.run(["ip", "netns", "pids", NETNS],
                                              capture_output=True, text=True,
                                              check=True).stdout.split()
                if Path(f"/proc/{pid}/comm").read_text().strip() == "libvirtd"]
    os.kill(int(daemon), signal.SIGKILL)
    # The supervisor starts a new one: status answers again within seconds.
    wait_until(lambda: nestlab("status", "-f", LAB_FILE, "--json").returncode == 0, 60,
               "the sandbox's libvirtd to answer again")
    status = json.loads(nestlab.ok("status", "-f", LAB_FILE, "--json").stdout)
    assert status["hosts"][0]["state"] == "running"
    assert changed_steps(up_again(nestlab)) == set()


def test_a_new_l2_size_is_applied_with_a_restart(nestlab: Nestlab, tmp_path: Path) -> None:
    bigger = tmp_path / "linux-nested.yaml"
    bigger.write_text(Path(LAB_FILE).read_text().replace("memory: 256MiB", "memory: 384MiB"))
    report = up_again(nestlab, str(bigger))
    assert changed_steps(report) == {("prime1", "define + start in kvm1")}
    meminfo = nestlab.ok("exec", "-f", LAB_FILE, "prime1", "--", "cat", "/proc/meminfo").stdout
    assert int(meminfo.split()[1]) > 300 * 1024  # kB: the L2 runs with its new size
    # The lab file and the lab agree now: nothing to do.
    assert changed_steps(up_again(nestlab, str(bigger))) == set()


def test_an_l1_restarted_behind_nestlabs_back_comes_back_whole(
        nestlab: Nestlab, lab_dir: Path, tmp_path: Path) -> None:
    sandbox_domain(lab_dir, "nestlab-linux-nested-kvm1").destroy()
    bigger = tmp_path / "linux-nested.yaml"
    bigger.write_text(Path(LAB_FILE).read_text().replace("memory: 256MiB", "memory: 384MiB"))
    report = up_again(nestlab, str(bigger))
    assert {("kvm1", "define + start"), ("prime1", "define + start in kvm1")} <= \
        changed_steps(report)


def test_up_after_a_host_reboot_brings_everything_back(
        nestlab: Nestlab, lab_dir: Path, tmp_path: Path) -> None:
    # As a reboot leaves it: no namespace, no daemon, no guest running; the lab's folder
    # (disks, definitions, keys) as it was.
    from nestlab import sandbox

    sandbox.stop(sandbox.Sandbox(LAB, lab_dir / "sandbox"))
    assert NETNS not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                       text=True, check=True).stdout
    bigger = tmp_path / "linux-nested.yaml"
    bigger.write_text(Path(LAB_FILE).read_text().replace("memory: 256MiB", "memory: 384MiB"))
    report = up_again(nestlab, str(bigger))
    assert {("L0", "sandbox libvirtd"), ("kvm1", "define + start"),
            ("prime1", "define + start in kvm1")} <= changed_steps(report)


def test_down_leaves_nothing(nestlab: Nestlab, lab_dir: Path) -> None:
    down = json.loads(nestlab.ok("down", "-f", LAB_FILE, "--json").stdout)
    assert down["removed_domains"] == ["nestlab-linux-nested-kvm1"]
    assert down["removed_guests"] == ["prime1"]
    assert down["removed_networks"] == ["nestlab-linux-nested-lab"]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=True).stdout
    assert NETNS not in netns
    assert not (lab_dir / "hosts").exists()
    assert not (lab_dir / "sandbox").exists()
    leftovers = subprocess.run(["pgrep", "-f", str(lab_dir)], capture_output=True, text=True,
                               check=False).stdout
    assert leftovers == ""
    assert (lab_dir / "keys" / "id_ed25519").exists()  # kept unless --purge
    nestlab.ok("down", "-f", LAB_FILE, "--purge")
    assert not lab_dir.exists()
