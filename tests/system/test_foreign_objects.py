"""Against a libvirt that holds other things too: nestlab refuses a name clash, and its
`down` removes only what it created.

The "host's" libvirtd here is one the test starts in a namespace of its own
(with nestlab's sandbox code, as the simplest correct way to get one); nestlab
runs inside that namespace without --sandbox, as it would on a real host.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from nestlab import sandbox
from tests.system.conftest import Nestlab

pytestmark = pytest.mark.system

LAB_TEXT = textwrap.dedent("""\
    lab: tiny
    networks:
      - name: lab
        cidr: 10.79.0.0/24
    hosts:
      - name: kvm1
        os: debian-12
        memory: 1GiB
        disk: 4GiB
        networks: [lab]
""")

FOREIGN_NETWORK = """<network><name>nestlab-tiny-decoy</name>
  <bridge name='decoy0'/><ip address='10.98.0.1' netmask='255.255.255.0'/></network>"""


def foreign_domain(name: str) -> str:
    return f"""<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>
      <os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"""


@pytest.fixture(scope="module")
def host_libvirt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sandbox.Sandbox]:
    box = sandbox.Sandbox("fakehost", tmp_path_factory.mktemp("fakehost") / "libvirt")
    sandbox.start(box)
    try:
        yield box
    finally:
        sandbox.stop(box)
    assert not sandbox.netns_exists(box.netns)


def test_only_its_own_objects_are_touched(nestlab: Nestlab, images: None,
                                          host_libvirt: sandbox.Sandbox, tmp_path: Path) -> None:
    lab_file = tmp_path / "tiny.yaml"
    lab_file.write_text(LAB_TEXT)
    uri, netns = host_libvirt.uri, host_libvirt.netns
    conn = libvirt.open(uri)
    try:
        def inventory() -> dict[str, object]:
            return {
                "domains": {d.name(): d.XMLDesc(0) for d in conn.listAllDomains(0)},
                "networks": {n.name(): (n.isActive(), n.XMLDesc(0))
                             for n in conn.listAllNetworks(0)},
            }

        decoy_net = conn.networkDefineXML(FOREIGN_NETWORK)
        decoy_net.create()
        conn.defineXML(foreign_domain("nestlab-tiny-other"))
        clash = conn.defineXML(foreign_domain("nestlab-tiny-kvm1"))
        with_clash = inventory()

        refused = nestlab("--connect", uri, "up", "-f", str(lab_file), netns=netns)
        assert refused.returncode == 1
        assert "a domain named nestlab-tiny-kvm1 exists and is not lab tiny's" in refused.stderr
        assert inventory() == with_clash  # refused before it created anything
        clash.undefine()
        before = inventory()

        nestlab.ok("--connect", uri, "up", "-f", str(lab_file), netns=netns)
        assert conn.lookupByName("nestlab-tiny-kvm1").isActive()
        assert conn.networkLookupByName("nestlab-tiny-lab").isActive()
        nestlab.ok("--connect", uri, "down", "-f", str(lab_file), "--purge", netns=netns)
        assert inventory() == before
    finally:
        conn.close()
