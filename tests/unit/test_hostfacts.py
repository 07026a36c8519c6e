"""Reading the machine: /proc and /sys from a fake tree, libvirt XML from recordings."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.errors import FactsFileError
from nestlab.hostfacts import (
    load_facts,
    parse_domain_capabilities,
    parse_domain_types,
    read_cpu,
    read_kvm,
    read_libvirt,
    read_resources,
)
from tests.conftest import FACTS

LIBVIRT = FACTS.parent / "libvirt"

CPUINFO = """\
processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD Ryzen 5 3600 6-Core Processor
flags\t\t: fpu svm lm npt

processor\t: 1
vendor_id\t: AuthenticAMD
flags\t\t: fpu lm
"""


def make_tree(root: Path, module: str | None, params: dict[str, str]) -> Path:
    (root / "proc").mkdir(parents=True)
    (root / "proc/cpuinfo").write_text(CPUINFO)
    (root / "proc/meminfo").write_text(
        "MemTotal:       32768000 kB\nMemFree:         1000 kB\nMemAvailable:   16384000 kB\n"
    )
    if module:
        (root / "sys/module" / module / "parameters").mkdir(parents=True)
        for name, value in params.items():
            (root / "sys/module" / module / "parameters" / name).write_text(value + "\n")
    return root


def test_read_cpu_takes_the_first_processor(tmp_path: Path) -> None:
    cpu = read_cpu(make_tree(tmp_path, None, {}))
    assert cpu.vendor == "amd"
    assert cpu.model_name == "AMD Ryzen 5 3600 6-Core Processor"
    assert cpu.flags == ("fpu", "lm", "npt", "svm")


def test_read_kvm_amd_parameters(tmp_path: Path) -> None:
    kvm = read_kvm(make_tree(tmp_path, "kvm_amd", {"nested": "1", "npt": "1"}))
    assert kvm.module == "kvm_amd"
    assert (kvm.nested, kvm.slat) == ("1", "1")
    assert not kvm.device_present and not kvm.device_openable


def test_read_kvm_device_that_opens(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "kvm_intel", {"nested": "N", "ept": "Y"})
    (root / "dev").mkdir()
    (root / "dev/kvm").write_text("")  # a plain file stands in for the node: it opens
    kvm = read_kvm(root)
    assert kvm.device_present and kvm.device_openable
    assert (kvm.module, kvm.nested, kvm.slat) == ("kvm_intel", "N", "Y")


def test_read_resources(tmp_path: Path) -> None:
    res = read_resources(make_tree(tmp_path, None, {}), tmp_path / "not" / "yet" / "made")
    assert res.mem_total == 32768000 * 1024
    assert res.mem_available == 16384000 * 1024
    assert res.disk_free > 0
    assert res.disk_path.endswith("not/yet/made")


def test_parse_domain_capabilities() -> None:
    caps = parse_domain_capabilities((LIBVIRT / "domcaps-intel-kvm.xml").read_text())
    assert caps.host_passthrough
    assert "vmx" in caps.host_model_features
    assert "hle" not in caps.host_model_features  # policy='disable' is not required
    assert caps.hyperv_features is not None and "evmcs" in caps.hyperv_features
    assert caps.firmware == (
        "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
    )


def test_parse_domain_types() -> None:
    xml = """<capabilities><host/>
      <guest><os_type>hvm</os_type><arch name='x86_64'>
        <domain type='qemu'/><domain type='kvm'/></arch></guest>
      <guest><os_type>hvm</os_type><arch name='i686'><domain type='qemu'/></arch></guest>
    </capabilities>"""
    assert parse_domain_types(xml) == ("kvm", "qemu")


def test_unreachable_libvirt_is_a_fact() -> None:
    facts = read_libvirt("qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    assert not facts.reachable
    assert facts.error and "/nonexistent/libvirt-sock" in facts.error


def test_load_facts_rejects_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "facts.json"
    bad.write_text('{"format": 1}')
    with pytest.raises(FactsFileError, match="not a nestlab facts file") as info:
        load_facts(bad)
    assert info.value.exit_code == 2
    with pytest.raises(FactsFileError, match="cannot read"):
        load_facts(tmp_path / "missing.json")
