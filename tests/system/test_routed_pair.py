"""Two L1s with routed L2 networks, for real in a sandbox: the L2 in one L1 reaches the L2
in the other, both ways, through the routes nestlab gives the L1s (no NAT between them).
The lab is taken down at the end whatever happens."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.system.conftest import Nestlab

pytestmark = pytest.mark.system

LAB_FILE = str(EXAMPLES / "routed-pair.yaml")


def test_the_l2s_of_two_l1s_reach_each_other(nestlab: Nestlab, images: None,
                                              nestlab_home: Path) -> None:
    try:
        nestlab.ok("up", "--sandbox", "-f", LAB_FILE, "--json", timeout=1500)
        for source, target in (("pa1", "192.168.101.10"), ("pb1", "192.168.100.10")):
            ping = nestlab.ok("exec", "-f", LAB_FILE, source, "--", "ping", "-c", "2", "-W",
                              "5", target).stdout
            assert "2 packets received" in ping, ping
        seen = nestlab.ok("exec", "-f", LAB_FILE, "kvm2", "--", "ip", "-4", "route", "show",
                          "192.168.100.0/24").stdout
        assert "via 10.78.0.10" in seen
    finally:
        nestlab("down", "-f", LAB_FILE, "--purge", timeout=600)
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=True).stdout
    assert "nestlab-routed-pair" not in netns
    assert not (nestlab_home / "labs" / "routed-pair").exists()
