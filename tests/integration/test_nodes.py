"""Seats on two nodes through the command line: each node a libvirt test-driver host of its
own, the L1s FAKE (tests/integration/conftest.py). `up` places a seat on each node and
records it; `status` has a node column; a node that stops answering makes its seat
unknown without hiding the other; `down` takes what it can and says what it cannot;
once the node answers again, `down` finishes."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import libvirt
import pytest

from nestlab.commands import context as labctx
from nestlab.commands import down as down_module
from nestlab.commands import seats as seats_module
from nestlab.host import nodefacts
from nestlab.host.facts import HostFacts
from nestlab.host.placement import NodeRoom
from nestlab.lab.model import GiB, Node
from nestlab.state.record import load_record
from nestlab.virt.connection import LibvirtError
from tests.fakes.lab import fake_l1s
from tests.fakes.linux import TESTDRIVER
from tests.integration.conftest import cli_json as nestlab
from tests.integration.conftest import host_facts, inventory
from tests.integration.test_seats import COURSE as SEATED

COURSE = SEATED + textwrap.dedent("""\
    nodes:
      - name: node-a
        uri: test:///node-a
      - name: node-b
        uri: test:///node-b
""")


class Fleet:
    """Two test-driver hosts by URI; a node taken away refuses every connection."""

    def __init__(self) -> None:
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        self.conns = {uri: libvirt.open(f"test://{TESTDRIVER}")
                      for uri in ("test:///node-a", "test:///node-b")}
        self.gone: set[str] = set()

    def connect(self, uri: str) -> libvirt.virConnect:
        if uri in self.gone:
            raise LibvirtError(f"cannot connect to libvirt at {uri}: Connection reset by peer")
        return _Unclosable(self.conns[uri])

    def room(self, node: Node, seated: int) -> NodeRoom:
        return NodeRoom(node.name, 8 * GiB, 4, node.weight, node.max_seats, seated,
                        answers=node.uri not in self.gone)


class _Unclosable:
    """A node's one connection, which each command may close: the test driver keeps its
    state per connection, as one libvirtd keeps it for all."""

    def __init__(self, conn: libvirt.virConnect) -> None:
        self._conn = conn

    def close(self) -> int:
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch, home: Path) -> Fleet:
    fleet = Fleet()
    for module in (labctx, down_module, seats_module):
        monkeypatch.setattr(module, "connect", fleet.connect)
    monkeypatch.setattr(nodefacts, "read_room", fleet.room)

    def read(_uri: str, _root: Path) -> HostFacts:
        return host_facts("")

    monkeypatch.setattr("nestlab.host.facts.read_host_facts", read)
    fake_l1s(monkeypatch, key=lambda host: host.domain_name)
    return fleet


def test_seats_on_two_nodes_a_node_that_stops_answering_and_down_of_both(
        fleet: Fleet, home: Path, tmp_path: Path) -> None:
    course = tmp_path / "course.yaml"
    course.write_text(COURSE)
    code, out, err = nestlab("up", "-f", str(course), "--json", "-q")
    assert code == 0, err
    assert [(s["lab"], s["outcome"]) for s in out["seats"]] == [
        ("course-s01", "up"), ("course-s02", "up")]
    records = [load_record(home / "labs" / seat) for seat in ("course-s01", "course-s02")]
    assert [(r.node, r.uri) for r in records] == [("node-a", "test:///node-a"),
                                                  ("node-b", "test:///node-b")]
    a, b = fleet.conns["test:///node-a"], fleet.conns["test:///node-b"]
    assert inventory(a) == {"domains": ["nestlab-course-s01-kvm1"],
                            "networks": ["nestlab-course-s01-lab"]}
    assert inventory(b) == {"domains": ["nestlab-course-s02-kvm1"],
                            "networks": ["nestlab-course-s02-lab"]}

    code, out, _ = nestlab("status", "-f", str(course), "--json")
    assert code == 0
    assert [(s["lab"], s["node"], s["state"]) for s in out["seats"]] == [
        ("course-s01", "node-a", "up"), ("course-s02", "node-b", "up")]
    code, text, _ = nestlab("status", "-f", str(course))
    assert "node" in text.splitlines()[1] and "node-b" in text
    code, listed, _ = nestlab("ls", "--json")
    assert [(lab["name"], lab["node"], lab["uri"]) for lab in listed] == [
        ("course-s01", "node-a", "test:///node-a"), ("course-s02", "node-b", "test:///node-b")]
    assert "node node-b" in " ".join(nestlab("ls")[1].split())

    fleet.gone.add("test:///node-b")
    code, out, _ = nestlab("status", "-f", str(course), "--json")
    assert code == 0
    rows = {s["lab"]: s for s in out["seats"]}
    assert rows["course-s01"]["state"] == "up"
    assert rows["course-s02"]["state"] == "unknown"
    assert rows["course-s02"]["problem"].startswith("node node-b does not answer (cannot "
                                                    "connect to libvirt at test:///node-b")
    l1 = rows["course-s02"]["status"]["hosts"][0]
    assert (l1["state"], [g["state"] for g in l1["guests"]]) == ("unknown", ["unknown"])

    code, out, _ = nestlab("up", "-f", str(course), "--json", "-q")  # nothing moves
    assert code == 1
    assert [(s["lab"], s["outcome"]) for s in out["seats"]] == [
        ("course-s01", "up"), ("course-s02", "failed")]
    assert "test:///node-b" in out["seats"][1]["error"]
    assert inventory(a)["domains"] == ["nestlab-course-s01-kvm1"]  # no seat 2 on node-a

    code, out, _ = nestlab("down", "-f", str(course), "--json", "-q")
    assert code == 1
    assert out["seats"][0]["result"]["removed_domains"] == ["nestlab-course-s01-kvm1"]
    assert out["seats"][1]["error"].startswith("node node-b does not answer (")
    assert inventory(a) == {"domains": [], "networks": []}

    fleet.gone.clear()
    code, out, err = nestlab("down", "-f", str(course), "--json", "-q", "--purge")
    assert code == 0, err
    assert inventory(b) == {"domains": [], "networks": []}
    assert not (home / "labs" / "course-s02").exists()


def test_a_seat_on_a_node_does_not_continue_elsewhere(fleet: Fleet, home: Path,
                                                      tmp_path: Path) -> None:
    course = tmp_path / "course.yaml"
    course.write_text(COURSE)
    assert nestlab("up", "-f", str(course), "-q")[0] == 0
    without_nodes = tmp_path / "here.yaml"
    without_nodes.write_text(COURSE.split("nodes:")[0])
    code, out, _ = nestlab("--connect", "test:///node-a", "up", "-f", str(without_nodes),
                           "--json", "-q")
    assert code == 1
    assert [s["error"] for s in out["seats"]] == [
        "lab course-s01 runs on node node-a (test:///node-a); it cannot continue on "
        "test:///node-a, not on a node",
        "lab course-s02 runs on node node-b (test:///node-b); it cannot continue on "
        "test:///node-a, not on a node"]
    assert load_record(home / "labs" / "course-s02").uri == "test:///node-b"  # untouched
    assert nestlab("down", "-f", str(course), "-q", "--purge")[0] == 0
