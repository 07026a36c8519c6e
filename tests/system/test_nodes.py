"""Seats on two nodes for real: a fleet of network namespaces (tests/system/fleet.py), a
controller where nestlab runs and two nodes with their own sshd and libvirtd, reached
with ``qemu+ssh://root@NODE/system``. `up` places one seat per node, copies the base
image and each L1's files to its node (checked by hash), boots the L1 there and proves
its L2 through the node's SSH; `status` has the node column; a second `up` changes
nothing; killing one node's libvirtd makes its seat unknown while the other answers;
`down` takes both away once the node is back, and nothing is left.

Sized for a 2-core machine: 1 small L1 (1 vCPU, 1 GiB) + 1 L2 per seat. The tests run
in order and share the fleet and its seats (each boot costs minutes under TCG).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.fleet import SUBNET, Fleet, FleetNode, leftovers

pytestmark = pytest.mark.system

LAB_TEXT = f"""\
lab: fleet
seats: 2
networks:
  - name: lab
    cidr: 10.78.0.0/24
hosts:
  - name: kvm1
    os: debian-12
    cpus: 1
    memory: 1GiB
    disk: 8GiB
    networks: [lab]
    guests:
      - name: prime1
        memory: 256MiB
        disk: 256MiB
nodes:
  - name: node-a
    uri: qemu+ssh://root@{SUBNET}.1.2/system
  - name: node-b
    uri: qemu+ssh://root@{SUBNET}.2.2/system
"""
SEATS = ("fleet-s01", "fleet-s02")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str],
          images: None) -> Iterator[Fleet]:
    """The fleet, its nodes each with their own view of nestlab's folders (the files `up`
    copies land there, as on other machines); whatever happens, every seat is taken down
    and the fleet stopped, leaving no namespace, veth or process."""
    root = tmp_path_factory.mktemp("fleet")
    home = root / "home"
    home.mkdir()
    fleet_env = {**env, "NESTLAB_HOME": str(home),
                 "NESTLAB_CACHE": env.get("NESTLAB_CACHE", "/var/cache/nestlab")}
    assert leftovers(root) == []  # no fleet left by an earlier run either
    fleet = Fleet(root / "fleet", fleet_env)
    try:
        fleet.start(["a", "b"], private_data={"a", "b"})
        (fleet.root / "fleet.yaml").write_text(LAB_TEXT)
        yield fleet
        if any((home / "labs" / seat).exists() for seat in SEATS):
            for node in fleet.nodes:
                if not node.libvirtd_pids():
                    fleet.revive_libvirtd(node)
            fleet.nestlab("down", "-f", str(fleet.root / "fleet.yaml"), "--purge", "-q",
                          timeout=600)
    finally:
        fleet.close()
    assert leftovers(root) == []


def lab_file(fleet: Fleet) -> str:
    return str(fleet.root / "fleet.yaml")


def node_copy(node: FleetNode, path: Path, env_key: str, fleet: Fleet) -> Path:
    """Where the node keeps its copy of ``path`` (a file under nestlab's folders)."""
    base = Path(fleet.env[env_key])
    return node.folder / "data" / env_key.lower() / path.relative_to(base)


def test_up_places_a_seat_on_each_node_and_proves_their_l2s(fleet: Fleet) -> None:
    a, b = fleet.nodes
    result = fleet.nestlab("up", "-f", lab_file(fleet), "--json", timeout=3600)
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(result.stdout)
    assert [(s["lab"], s["outcome"], [p["guest"] for p in s["proofs"]])
            for s in out["seats"]] == [("fleet-s01", "up", ["prime1"]),
                                       ("fleet-s02", "up", ["prime1"])]
    assert "image debian-12 on node node-a" in result.stderr
    assert "files on node node-b" in result.stderr

    home = Path(fleet.env["NESTLAB_HOME"])
    for seat, node in zip(SEATS, (a, b), strict=True):
        record = json.loads((home / "labs" / seat / "lab.json").read_text())
        assert (record["node"], record["uri"]) == (f"node-{node.name}", node.uri)
        disk = home / "labs" / seat / "hosts" / "kvm1" / "disk.qcow2"
        copy = node_copy(node, disk, "NESTLAB_HOME", fleet)
        assert copy.exists() and copy.stat().st_mode & 0o777 == 0o600
    # Each node has its own copy of the base image, checked by hash.
    images = list((a.folder / "data" / "nestlab_cache").rglob("*.sha256"))
    assert images and list((b.folder / "data" / "nestlab_cache").rglob("*.sha256"))

    rows = json.loads(fleet.nestlab("status", "-f", lab_file(fleet), "--json",
                                    check=True).stdout)["seats"]
    assert [(r["lab"], r["node"], r["state"], r["l2s"]) for r in rows] == [
        ("fleet-s01", "node-a", "up", {"running": 1, "total": 1}),
        ("fleet-s02", "node-b", "up", {"running": 1, "total": 1})]
    seat2 = json.loads(fleet.nestlab("status", "-f", lab_file(fleet), "--seat", "2",
                                     "--json", check=True).stdout)
    assert seat2["node"] == "node-b"
    assert seat2["hosts"][0]["address"] == "10.78.1.10"  # seat 2: the next /24, on node-b


def test_exec_reaches_an_l2_on_a_node_through_the_node_and_its_l1(fleet: Fleet) -> None:
    out = fleet.nestlab("exec", "-f", lab_file(fleet), "--seat", "2", "prime1", "--",
                        "sh", "-c", "echo $((6 * 7))", timeout=300, check=True).stdout
    assert out.strip() == "42"


def test_up_again_changes_nothing_and_copies_nothing(fleet: Fleet) -> None:
    result = fleet.nestlab("up", "-f", lab_file(fleet), "--json", "-q", timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    assert [s["counts"]["changed"] for s in json.loads(result.stdout)["seats"]] == [0, 0]


def test_a_node_whose_libvirtd_dies_is_reported_and_the_other_seat_goes_on(
        fleet: Fleet) -> None:
    _a, b = fleet.nodes
    # Its L1 keeps running (QEMU is not libvirtd's child); the revived libvirtd starts
    # with a new /run/libvirt and no longer knows it: `down` undefines it, and the
    # fleet's end stops whatever is left in the node's namespace.
    fleet.kill_libvirtd(b)
    rows = json.loads(fleet.nestlab("status", "-f", lab_file(fleet), "--json",
                                    timeout=300, check=True).stdout)["seats"]
    assert [(r["lab"], r["state"]) for r in rows] == [("fleet-s01", "up"),
                                                      ("fleet-s02", "unknown")]
    assert rows[1]["problem"].startswith("node node-b does not answer")
    out = fleet.nestlab("exec", "-f", lab_file(fleet), "--seat", "1", "prime1", "--",
                        "true", timeout=300)
    assert out.returncode == 0, out.stderr
    fleet.revive_libvirtd(b)


def test_down_cleans_both_nodes_and_leaves_nothing(fleet: Fleet) -> None:
    a, b = fleet.nodes
    result = fleet.nestlab("down", "-f", lab_file(fleet), "--purge", "--json", "-q",
                           timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(result.stdout)
    assert [(s["lab"], s["result"]["purged"]) for s in out["seats"]] == [
        (seat, True) for seat in SEATS]
    for node in (a, b):
        listed = fleet.in_controller("virsh", "-c", node.uri, "list", "--all", "--name",
                                     check=True).stdout
        assert "nestlab-fleet" not in listed
        assert not list((node.folder / "data" / "nestlab_home").rglob("disk.qcow2"))
    home = Path(fleet.env["NESTLAB_HOME"])
    assert not any((home / "labs" / seat).exists() for seat in SEATS)
