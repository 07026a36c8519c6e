"""bench/peers.py's pure parts: the box metadata, the Vagrantfile, the table, and what it
reads from `nestlab render`."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_peers", REPO / "bench" / "peers.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_peers"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


peers = _load()
GiB = 1024 ** 3


@pytest.mark.parametrize(("size", "gib"), [(3 * GiB, 3), (3 * GiB + 1, 4), (1, 1)])
def test_box_metadata_rounds_the_size_up_to_whole_gib(size: int, gib: int) -> None:
    assert peers.box_metadata(size) == {"provider": "libvirt", "format": "qcow2",
                                        "virtual_size": gib}


def _spec(machines: tuple[str, ...], key: str = "/k/id_ed25519") -> object:
    return peers.VagrantSpec("qemu+unix:///system?socket=/s/sock", Path(key), Path("/i/vmlinuz"),
                             Path("/i/initrd.img"), Path("/w/seed.iso"), Path("/w/pool"), 512,
                             machines)


def test_vagrantfile_asks_for_the_nested_cpu_the_private_libvirtd_and_the_lab_key() -> None:
    text = peers.vagrantfile(_spec(("kvm1",)))
    for line in ("lv.uri = 'qemu+unix:///system?socket=/s/sock'", "lv.driver = 'qemu'",
                 "lv.nested = true", "lv.cpu_mode = 'custom'", "lv.cpu_model = 'EPYC'",
                 "lv.cpu_feature name: 'svm', policy: 'require'", "lv.memory = 512",
                 "lv.kernel = '/i/vmlinuz'", "lv.initrd = '/i/initrd.img'",
                 "lv.cmd_line = 'root=/dev/vda rw console=ttyS0,115200n8'",
                 "config.ssh.username = 'root'",
                 "config.ssh.private_key_path = '/k/id_ed25519'",
                 "config.ssh.insert_key = false", "config.ssh.sudo_command = '%c'",
                 "path: '/w/seed.iso'"):
        assert line in text
    assert text.count("config.vm.define") == 1
    assert text.rstrip().endswith("end")


def test_vagrantfile_defines_each_machine_and_quotes_paths() -> None:
    text = peers.vagrantfile(_spec(("kvm1", "kvm2", "kvm3", "kvm4"), key="/k/it's #{x}"))
    assert [line.strip() for line in text.splitlines() if "vm.define" in line] == [
        f"config.vm.define 'kvm{i}'" for i in range(1, 5)]
    assert "config.ssh.private_key_path = '/k/it\\'s #{x}'" in text


def test_table_gives_each_time_its_ratio_to_nestlab() -> None:
    rows = [peers.Outcome("nestlab", {"L1 SSH-ready": 30.0, "L2 proven": 60.0,
                                      "overhead 1 L1": 2.0, "overhead 4 L1s": 4.0}),
            peers.Outcome("virt-install", {"L1 SSH-ready": 45.0, "L2 proven": 90.0,
                                           "overhead 1 L1": 1.0, "overhead 4 L1s": None})]
    lines = peers.format_table(rows).splitlines()
    assert lines[0].split()[:3] == ["tool", "L1", "SSH-ready"]
    assert lines[1].split() == ["nestlab", "30.0s", "(1.00x)", "60.0s", "(1.00x)",
                                "2.0s", "(1.00x)", "4.0s", "(1.00x)"]
    assert lines[2].split() == ["virt-install", "45.0s", "(1.50x)", "90.0s", "(1.50x)",
                                "1.0s", "(0.50x)", "-"]


def test_table_marks_a_failed_tool_and_shows_no_ratio_without_nestlab() -> None:
    rows = [peers.Outcome("vagrant-libvirt", {"L1 SSH-ready": 45.0}, error="boom")]
    lines = peers.format_table(rows).splitlines()
    assert lines[1].split() == ["vagrant-libvirt", "(FAILED)", "45.0s", "-", "-", "-"]


def test_what_the_bench_reads_from_nestlab_render(tmp_path: Path) -> None:
    out = tmp_path / "render"
    subprocess.run([sys.executable, "-m", "nestlab", "render", "-f",
                    str(REPO / "examples" / "linux-nested.yaml"), "--out", str(out)],
                   env={**os.environ, "NESTLAB_HOME": str(tmp_path / "home")},
                   check=True, capture_output=True)
    l2 = peers.rendered_l2(out)
    assert (l2["net"], l2["dom"]) == ("nestlab-nat", "nestlab-linux-nested-prime1")
    assert l2["disk"] == "/var/lib/nestlab/guests/prime1/disk.qcow2"
    assert l2["kernel"] == "/var/lib/nestlab/images/prime/vmlinuz"
    assert "<domain type='kvm'>" in l2["dom_xml"]
    name, mac, ip = peers.l0_network(next((out / "l0" / "networks").glob("*.xml")))
    assert (name, ip) == ("nestlab-linux-nested-lab", "10.77.0.10")
    assert mac.startswith("52:54:00:")
