"""Verdicts from recorded host facts: each case a user's host could be in."""

from __future__ import annotations

from nestlab.host.check import HostReport, Status, check_host
from nestlab.lab.labfile import parse_lab
from tests.conftest import example, example_text, facts


def by_name(report: HostReport) -> dict[str, tuple[Status, str, str | None]]:
    return {c.name: (c.status, c.detail, c.fix) for c in report.checks}


def test_this_machine_paravirtual_kvm_falls_back_to_tcg() -> None:
    report = check_host(facts("this-machine-paravirtual-kvm"), example("linux-nested"))
    checks = by_name(report)
    assert report.accel == "tcg"
    assert report.can_run
    status, detail, _ = checks["kvm-device"]
    assert status is Status.warn
    assert "paravirtual KVM backend that cannot run standard guests" in detail
    assert checks["cpu-virtualization"][0] is Status.warn
    assert "emulated AMD SVM" in report.summary


def test_windows_lab_on_a_tcg_host_cannot_run() -> None:
    report = check_host(facts("this-machine-paravirtual-kvm"), example("windows-hyperv"))
    assert report.accel == "tcg"
    assert not report.can_run
    status, detail, _ = by_name(report)["windows-accel"]
    assert status is Status.fail
    assert "not practical" in detail


def test_intel_nested_y_gives_kvm() -> None:
    report = check_host(facts("intel-nested-y"), example("linux-nested"))
    assert report.accel == "kvm"
    assert report.can_run
    assert report.vendor == "intel"
    assert all(c.status is Status.ok for c in report.checks), report.checks


def test_intel_nested_n_says_how_to_enable_it() -> None:
    report = check_host(facts("intel-nested-n"), example("linux-nested"))
    status, detail, fix = by_name(report)["nested"]
    assert report.accel == "tcg"  # still runs, emulated, with a warning
    assert status is Status.warn
    assert detail.startswith("kvm_intel nested=N")
    assert fix is not None
    assert "options kvm_intel nested=1" in fix
    assert "/etc/modprobe.d/" in fix
    assert "modprobe -r kvm_intel && sudo modprobe kvm_intel" in fix


def test_intel_nested_n_is_a_failure_when_the_lab_asks_for_kvm() -> None:
    lab = parse_lab(example_text("linux-nested").replace("lab: linux-nested",
                                                           "lab: linux-nested\naccel: kvm"))
    report = check_host(facts("intel-nested-n"), lab)
    assert report.accel == "none"
    assert not report.can_run
    assert by_name(report)["nested"][0] is Status.fail


def test_amd_nested_0_says_how_to_enable_it() -> None:
    report = check_host(facts("amd-nested-0"), example("linux-nested"))
    status, detail, fix = by_name(report)["nested"]
    assert status is Status.warn
    assert detail.startswith("kvm_amd nested=0")
    assert fix is not None and "options kvm_amd nested=1" in fix


def test_amd_nested_1_gives_kvm_without_evmcs() -> None:
    report = check_host(facts("amd-nested-1"), example("linux-nested"))
    assert report.accel == "kvm"
    assert report.vendor == "amd"
    assert not report.evmcs


def test_intel_offers_evmcs() -> None:
    assert check_host(facts("intel-nested-y")).evmcs


def test_no_dev_kvm() -> None:
    report = check_host(facts("intel-no-dev-kvm"), example("linux-nested"))
    status, detail, fix = by_name(report)["kvm-device"]
    assert report.accel == "tcg"
    assert status is Status.warn
    assert detail == "/dev/kvm does not exist"
    assert fix == "sudo modprobe kvm_intel"


def test_libvirtd_unreachable_cannot_run_the_lab_with_the_fix() -> None:
    report = check_host(facts("intel-libvirt-unreachable"), example("linux-nested"), "host")
    status, detail, fix = by_name(report)["libvirt"]
    assert status is Status.fail
    assert not report.can_run
    assert "does not answer" in detail
    assert fix is not None and "systemctl enable --now libvirtd" in fix
    assert "--sandbox" in fix
    assert report.accel == "kvm"
    assert by_name(report)["host-passthrough"][0] is Status.warn  # could not be verified


def test_libvirtd_unreachable_is_fine_for_a_sandbox() -> None:
    report = check_host(facts("intel-libvirt-unreachable"), example("linux-nested"), "sandbox")
    status, detail, _fix = by_name(report)["libvirt"]
    assert status is Status.ok
    assert report.can_run
    assert "the sandbox runs its own libvirtd" in detail


def test_libvirtd_unreachable_only_warns_when_nothing_runs_now() -> None:
    report = check_host(facts("intel-libvirt-unreachable"), example("linux-nested"))
    assert by_name(report)["libvirt"][0] is Status.warn
    assert report.can_run


def test_libvirt_not_installed_cannot_run() -> None:
    report = check_host(facts("intel-no-libvirt"), example("linux-nested"))
    assert not report.can_run
    assert by_name(report)["libvirt"][2] == "sudo apt-get install libvirt-daemon-system"


def test_windows_on_intel_kvm_can_run() -> None:
    report = check_host(facts("intel-nested-y"), example("windows-hyperv"))
    checks = by_name(report)
    assert report.can_run
    assert checks["windows-vendor"][0] is Status.ok
    assert checks["hyperv-features"][0] is Status.ok
    assert checks["ovmf"][0] is Status.ok


def test_windows_on_amd_is_flagged_unproven() -> None:
    report = check_host(facts("amd-nested-1"), example("windows-hyperv"))
    status, detail, _ = by_name(report)["windows-vendor"]
    assert report.can_run
    assert status is Status.warn
    assert "unproven" in detail


def test_windows_server_2019_on_amd_is_unproven_too() -> None:
    report = check_host(facts("amd-nested-1"), example("windows-server-2019"))
    status, detail, fix = by_name(report)["windows-vendor"]
    assert report.can_run
    assert status is Status.warn
    assert detail.startswith("AMD host: Hyper-V in a Windows Server 2019 L1 on AMD KVM is "
                             "unproven (Microsoft supports nested Hyper-V on AMD only from "
                             "Windows Server 2022 on")
    assert fix and "windows-server-2022" in fix


def test_windows_server_2022_on_amd_is_what_microsoft_supports() -> None:
    report = check_host(facts("amd-nested-1"), example("windows-server-2022"))
    status, detail, fix = by_name(report)["windows-vendor"]
    assert report.can_run
    assert status is Status.ok and fix is None
    assert "Microsoft supports nested Hyper-V on AMD from Windows Server 2022 on" in detail
    assert "by starting the L2s" in detail  # under KVM it is still proven, not assumed


def test_a_lab_with_2016_and_2022_l1s_on_amd_names_the_unproven_one() -> None:
    text = example_text("windows-server-2022").replace(
        "    guests:\n", "    guests: []\n  - name: hv2\n    os: windows-server-2016\n"
        "    memory: 4GiB\n    networks: [lab]\n    guests:\n", 1)
    report = check_host(facts("amd-nested-1"), parse_lab(text))
    status, detail, _ = by_name(report)["windows-vendor"]
    assert status is Status.warn
    assert "a Windows Server 2016 L1 on AMD KVM is unproven" in detail
    assert "2022" not in detail.split("(")[0]


def test_every_windows_version_on_intel_is_ok_and_needs_kvm() -> None:
    for name in ("windows-hyperv", "windows-server-2019", "windows-server-2022"):
        assert by_name(check_host(facts("intel-nested-y"), example(name)))[
            "windows-vendor"][0] is Status.ok
    report = check_host(facts("this-machine-paravirtual-kvm"), example("windows-server-2022"))
    status, detail, _ = by_name(report)["windows-accel"]
    assert status is Status.fail
    assert detail.startswith("a Windows L1 with Hyper-V (Windows Server 2022) needs kvm")


def test_not_enough_memory_fails() -> None:
    report = check_host(facts("intel-small-memory"), example("windows-hyperv"))
    status, detail, _ = by_name(report)["memory"]
    assert status is Status.fail
    assert detail == "the L1 hosts need 8.0GiB, 2.0GiB is available"
    assert not report.can_run


def test_more_than_one_vcpu_under_tcg_warns() -> None:
    lab = parse_lab(example_text("linux-nested").replace("    os: debian-12\n",
                                                         "    os: debian-12\n    cpus: 2\n"))
    report = check_host(facts("this-machine-paravirtual-kvm"), lab)
    assert by_name(report)["tcg-vcpus"][0] is Status.warn


def test_lab_can_force_tcg_on_a_kvm_host() -> None:
    lab = parse_lab(example_text("linux-nested").replace(
        "lab: linux-nested", "lab: linux-nested\naccel: tcg"))
    assert check_host(facts("intel-nested-y"), lab).accel == "tcg"


def test_host_only_check_has_no_lab_checks() -> None:
    names = {c.name for c in check_host(facts("intel-nested-y")).checks}
    assert "memory" not in names and "nested" in names


def test_a_kernel_without_hyperv_emulation_cannot_run_windows() -> None:
    recorded = facts("intel-nested-y")
    kernel = recorded.kvm.model_copy(update={"hyperv_emulation": "n"})
    report = check_host(recorded.model_copy(update={"kvm": kernel}), example("windows-hyperv"))
    assert not report.can_run
    assert by_name(report)["kvm-hyperv"][0] is Status.fail


def test_the_disk_check_counts_the_memory_a_baseline_keeps_per_seat() -> None:
    lab = parse_lab(example_text("linux-nested").replace("lab: linux-nested\n",
                                                         "lab: linux-nested\nseats: 3\n"))
    status, detail, _ = by_name(check_host(facts("intel-nested-y"), lab))["disk"]
    assert status is Status.ok
    assert detail.endswith("a baseline or a snapshot keeps each L1's memory too: up to "
                           "9.0GiB each")  # 3 seats of one 3 GiB L1
