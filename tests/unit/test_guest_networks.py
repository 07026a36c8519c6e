"""L2 networks: each L1's L2s in a subnet of their own by default, and routed L2 networks
whose L2s reach the other routed L1s' L2s through routes between the L1s."""

from __future__ import annotations

import ipaddress
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nestlab.errors import LabFileError
from nestlab.host.check import HostDecision
from nestlab.lab.labfile import parse_lab
from nestlab.plan import make_plan
from nestlab.render import render_guest_network_xml
from tests.conftest import example

DECISION = HostDecision(accel="tcg", vendor="amd", evmcs=False)
PAIR = textwrap.dedent("""\
    lab: pair
    networks:
      - {name: lab, cidr: 10.81.0.0/24}
      - {name: other, cidr: 10.82.0.0/24}
    hosts:
      - {name: kvm1, os: debian-12, networks: [lab], guests: [{name: a1}]}
      - {name: kvm2, os: debian-12, networks: [lab], guests: [{name: b1}]}
""")


def test_each_l1s_l2s_get_a_subnet_of_their_own_by_default() -> None:
    plan = make_plan(parse_lab(PAIR), DECISION, Path("/x"))
    assert [str(h.guest_network.cidr) for h in plan.hosts] == ["192.168.100.0/24",
                                                               "192.168.101.0/24"]
    assert [str(h.guests[0].ip) for h in plan.hosts] == ["192.168.100.10", "192.168.101.10"]
    assert all(h.guest_network.routes == () for h in plan.hosts)  # nat: no routes


def test_routed_l1s_route_to_each_others_l2s() -> None:
    plan = make_plan(example("routed-pair"), DECISION, Path("/x"))
    kvm1, kvm2 = plan.hosts
    net = ipaddress.IPv4Network
    assert kvm1.guest_network.routes == ((net("192.168.101.0/24"), kvm2.nics[0].ip),)
    assert kvm2.guest_network.routes == ((net("192.168.100.0/24"), kvm1.nics[0].ip),)
    xml = ET.fromstring(render_guest_network_xml(plan, kvm1))
    assert xml.find("forward").get("mode") == "route"  # type: ignore[union-attr]


def problems(text: str) -> list[str]:
    with pytest.raises(LabFileError) as info:
        parse_lab(text, "lab.yaml")
    return [p.describe("lab.yaml") for p in info.value.problems]


def test_routed_l2_subnets_must_differ() -> None:
    text = PAIR.replace("networks: [lab], guests: [{name: a1}]",
                        "networks: [lab], guests: [{name: a1}], guest_network: "
                        "{mode: routed, cidr: 192.168.101.0/24}").replace(
        "networks: [lab], guests: [{name: b1}]",
        "networks: [lab], guests: [{name: b1}], guest_network: {mode: routed}")
    assert problems(text) == [
        "lab.yaml:7: hosts[1].guest_network.cidr: 192.168.101.0/24 overlaps 192.168.101.0/24, "
        "the routed L2 network of 'kvm1'"]


def test_routed_l1s_must_share_an_l1_network() -> None:
    text = PAIR.replace("networks: [lab], guests: [{name: a1}]",
                        "networks: [lab], guests: [{name: a1}], guest_network: {mode: routed}"
                        ).replace("networks: [lab], guests: [{name: b1}]",
                                  "networks: [other], guests: [{name: b1}], "
                                  "guest_network: {mode: routed}")
    assert problems(text) == [
        "lab.yaml:7: hosts[1].networks: 'kvm2' and 'kvm1' have routed L2 networks but share "
        "no L1 network to route between them"]


def test_a_windows_l1_has_no_routed_l2_network() -> None:
    text = example_text_windows().replace("      mode: nat", "      mode: routed")
    assert any("routed L2 networks are not built for a Windows Server 2016 L1" in p
               for p in problems(text))


def example_text_windows() -> str:
    return (Path(__file__).resolve().parents[2] / "examples" / "windows-hyperv.yaml").read_text()
