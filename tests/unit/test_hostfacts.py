"""Reading the machine: /proc and /sys from a fake tree, libvirt XML from recordings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from nestlab.errors import FactsFileError, InputError
from nestlab.host.facts import (
    load_facts,
    parse_domain_capabilities,
    parse_domain_types,
    read_cpu,
    read_kvm,
    read_libvirt,
    read_resources,
)
from nestlab.lab.model import MiB
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
    assert res.disk_path.endswith("not/yet/made")
    # The folder does not exist yet: the free space is that of its nearest existing
    # parent's file system (tmp_path), give or take what others write meanwhile.
    usage = shutil.disk_usage(tmp_path)
    assert abs(res.disk_free - usage.free) <= max(256 * MiB, usage.total // 100)


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
    with pytest.raises(InputError) as missing:
        load_facts(tmp_path / "missing.json")
    assert missing.value.message == f"{tmp_path / 'missing.json'}: no such facts file"


def recorded(**changes: Any) -> dict[str, Any]:
    """A recorded facts file as JSON data, with ``section__key=value`` changes."""
    data: dict[str, Any] = json.loads((FACTS / "intel-nested-y.json").read_text())
    for name, value in changes.items():
        section, _, key = name.partition("__")
        if key:
            data[section][key] = value
        else:
            data[section] = value
    return data


@pytest.mark.parametrize(("changes", "where"), [
    ({"format": True}, "format: Input should be 1"),
    ({"format": 1.0}, "format: Input should be 1"),
    ({"kvm__device_present": "yes"}, "kvm.device_present: Input should be a valid boolean"),
    ({"kvm__device_present": 1}, "kvm.device_present: Input should be a valid boolean"),
    ({"resources__mem_total": "32768000"}, "resources.mem_total: Input should be a valid "
                                           "integer"),
    ({"resources__disk_free": 5e10}, "resources.disk_free: Input should be a valid integer"),
], ids=["format-true", "format-float", "bool-from-yes", "bool-from-1", "int-from-str",
        "int-from-float"])
def test_facts_are_read_strictly(tmp_path: Path, changes: dict[str, Any], where: str) -> None:
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(recorded(**changes)))
    with pytest.raises(FactsFileError) as info:
        load_facts(path)
    assert info.value.message == (f"{path}: not a nestlab facts file (format 1): {where} "
                                  "(1 problem(s))")


def test_recorded_facts_still_load_strictly() -> None:
    for path in FACTS.glob("*.json"):
        assert load_facts(path).format == 1, path


def test_facts_that_are_not_utf8_or_too_large_are_refused(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(json.dumps(recorded(cpu__model_name="Pentium®"), ensure_ascii=False)
                       .encode("latin-1"))
    with pytest.raises(InputError) as info:
        load_facts(latin1)
    assert info.value.exit_code == 2
    assert info.value.message.startswith(f"{latin1}: the facts file is not UTF-8 text")
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps(recorded(cpu__flags=["x" * 100] * 11_000)))
    with pytest.raises(InputError) as info:
        load_facts(huge)
    assert info.value.message.endswith("bytes; at most 1048576 are accepted")
