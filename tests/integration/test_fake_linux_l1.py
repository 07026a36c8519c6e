"""The FAKE Linux L1 prints what the real virsh prints: the same libvirt test driver, the
same domains, asked once through ``virsh`` and once through the fake."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fakes.linux import TESTDRIVER, FakeLinuxL1

DOMAINS = ("nestlab-linux-nested-prime1", "p2", "nestlab-linux-nested-prime10", "off")
ACTIONS = (("start", "p2"), ("start", "nestlab-linux-nested-prime1"), ("suspend", "p2"),
           ("start", "nestlab-linux-nested-prime10"))


def domain_xml(name: str) -> str:
    return (f"<domain type='test'><name>{name}</name><memory>65536</memory>"
            "<os><type>hvm</type></os></domain>")


def real_virsh_list(tmp_path: Path) -> str:
    """`virsh list --all` after the same defines and actions, in one virsh session."""
    commands = []
    for name in DOMAINS:
        (tmp_path / f"{name}.xml").write_text(domain_xml(name))
        commands.append(f"define {tmp_path / name}.xml")
    commands += [f"{verb} {name}" for verb, name in ACTIONS]
    out = subprocess.run(["virsh", "-c", f"test://{TESTDRIVER}", "; ".join(commands)
                          + "; list --all"], capture_output=True, text=True, check=True).stdout
    return out[out.index(" Id "):]


def test_list_all_prints_virshs_table(tmp_path: Path) -> None:
    l1 = FakeLinuxL1("kvm1", libvirtd_active=True)
    for name in DOMAINS:
        l1.conn.defineXML(domain_xml(name))
    for verb, name in ACTIONS:
        dom = l1.conn.lookupByName(name)
        {"start": dom.create, "suspend": dom.suspend}[verb]()
    fake = l1.run(["virsh", "-c", "qemu:///system", "list", "--all"]).stdout
    assert fake == real_virsh_list(tmp_path)
    empty = FakeLinuxL1("kvm2", libvirtd_active=True)
    assert empty.run(["virsh", "-c", "qemu:///system", "list", "--all"]).stdout == (
        " Id   Name   State\n--------------------\n\n")
