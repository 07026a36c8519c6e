"""The FAKE Linux L1 prints what the real virsh prints: the same libvirt test driver, the
same domains, asked once through ``virsh`` and once through the fake."""

from __future__ import annotations

import subprocess
from pathlib import Path

from nestlab.provision.linux import _LIBVIRT_TABLES
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


def test_commands_in_one_virsh_go_on_after_a_failure_and_exit_as_the_last(
        tmp_path: Path) -> None:
    """What provision/linux relies on when it sends several commands in one virsh: it ends
    with a read of the state they were to bring about, since the exit status is the
    last command's alone."""
    (tmp_path / "p.xml").write_text(domain_xml("p"))
    for script, status in ((f"start nosuch; define {tmp_path}/p.xml; domstate p", 0),
                           (f"define {tmp_path}/p.xml; domstate p; start nosuch", 1)):
        l1 = FakeLinuxL1("kvm1", libvirtd_active=True)
        l1.files[str(tmp_path / "p.xml")] = domain_xml("p").encode()
        real = subprocess.run(["virsh", "-c", f"test://{TESTDRIVER}", script],
                              capture_output=True, text=True, check=False)
        fake = l1.run(["virsh", "-c", "qemu:///system", script])
        assert (real.returncode, fake.exit_status) == (status, status), script
        assert real.stderr.startswith("error: ") and fake.stderr.startswith("error: ")
        assert real.stdout.strip().splitlines()[-1:] == \
            fake.stdout.strip().splitlines()[-1:], script


def test_net_info_prints_virshs_fields(tmp_path: Path) -> None:
    xml = ("<network><name>n1</name><bridge name='nlvirbr9'/>"
           "<ip address='192.168.109.1' netmask='255.255.255.0'/></network>")
    (tmp_path / "n1.xml").write_text(xml)
    script = f"net-define {tmp_path}/n1.xml; net-autostart n1; net-start n1; net-info n1"
    real = subprocess.run(["virsh", "-c", f"test://{TESTDRIVER}", script],
                          capture_output=True, text=True, check=True).stdout
    l1 = FakeLinuxL1("kvm1", libvirtd_active=True)
    l1.files[f"{tmp_path}/n1.xml"] = xml.encode()
    fake = l1.run(["virsh", "-c", "qemu:///system", script]).stdout

    def info(out: str) -> list[tuple[str, str]]:
        return [(key, value.strip() if key in ("Name", "Active", "Autostart", "Bridge") else "")
                for key, _, value in (line.partition(":") for line in out.splitlines())
                if key in ("Name", "UUID", "Active", "Persistent", "Autostart", "Bridge")]
    assert info(real) == info(fake)
    assert ("Autostart", "yes") in info(fake)


def test_net_list_and_the_tables_in_one_virsh_print_as_virsh_does(tmp_path: Path) -> None:
    """provision/linux reads both tables with one virsh (``_LIBVIRT_TABLES``): networks
    active and not, autostart and not, names of other widths; then the domains."""
    networks = {"nestlab-l2-long-name": ("start", "autostart"), "n2": ("autostart",),
                "n3": ("start",)}
    commands = []
    for name, verbs in networks.items():
        (tmp_path / f"{name}.xml").write_text(network_xml(name))
        commands.append(f"net-define {tmp_path / name}.xml")
        commands += [f"net-{verb} {name}" for verb in verbs]
    l1 = FakeLinuxL1("kvm1", libvirtd_active=True)
    for name, verbs in networks.items():
        net = l1.conn.networkDefineXML(network_xml(name))
        if "start" in verbs:
            net.create()
        if "autostart" in verbs:
            net.setAutostart(1)
    tables = _LIBVIRT_TABLES
    real = subprocess.run(["virsh", "-c", f"test://{TESTDRIVER}",
                           "; ".join(commands) + "; " + tables[-1]],
                          capture_output=True, text=True, check=True).stdout
    fake = l1.run(tables).stdout
    assert fake == real[real.index(" Name "):]
    assert fake.startswith(" Name ") and "\n\nnestlab-domains-follow\n Id " in fake


def network_xml(name: str) -> str:
    return f"<network><name>{name}</name><bridge name='{name[:12]}'/></network>"
