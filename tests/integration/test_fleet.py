"""Nodes for real, without booting a VM: a controller and two nodes made of network
namespaces (tests/system/fleet.py), each node with its own sshd and libvirtd, reached
by nestlab with ``qemu+ssh://root@NODE/system``. Two seats are placed one per node,
their networks and L1s defined (never started) there; `status` has the node column;
a node whose libvirtd is killed is reported and its seat unknown, the other seat
untouched; `down` takes what answers, and everything once the node is back. Nothing
is left: no namespace, veth, process or file outside the test's folder.

Needs root (namespaces) and OpenSSH's server; skipped without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.fleet import SUBNET, Fleet, leftovers

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/sbin/sshd").exists(),
    reason="needs root (network namespaces, libvirtd) and openssh-server")

LAB = f"""\
lab: fleet
seats: 2
networks:
  - name: lab
    cidr: 10.252.0.0/24
hosts:
  - name: kvm1
    os: debian-12
    memory: 1GiB
    cpus: 1
    networks: [lab]
    guests: [{{name: prime1, memory: 256MiB}}]
nodes:
  - name: node-a
    uri: qemu+ssh://root@{SUBNET}.1.2/system
  - name: node-b
    uri: qemu+ssh://root@{SUBNET}.2.2/system
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    env = {**os.environ, "NESTLAB_HOME": str(root / "home"),
           "NESTLAB_CACHE": str(root / "cache")}
    for key in ("NESTLAB_HOME", "NESTLAB_CACHE"):
        Path(env[key]).mkdir()
    assert leftovers(root) == []  # no fleet left by an earlier run either
    fleet = Fleet(root / "fleet", env)
    try:
        # node-a sees its own data folders, as another machine would; node-b sees this
        # host's, which nestlab must refuse to copy onto.
        fleet.start(["a", "b"], private_data={"a"})
        yield fleet
    finally:
        fleet.close()
    assert leftovers(root) == []


def node_objects(fleet: Fleet, uri: str) -> list[str]:
    """Every nestlab domain and network the node's libvirt has, asked over qemu+ssh (a
    node also has libvirt's own `default` network, copied from /etc/libvirt)."""
    names = []
    for what in ("list", "net-list"):
        out = fleet.in_controller("virsh", "-c", uri, what, "--all", "--name", check=True)
        names += [n for n in out.stdout.split() if n.startswith("nestlab-")]
    return sorted(names)


def test_two_seats_on_two_nodes_over_qemu_ssh(fleet: Fleet) -> None:
    a, b = fleet.nodes
    lab_file = fleet.root / "fleet.yaml"
    lab_file.write_text(LAB)
    home = Path(fleet.env["NESTLAB_HOME"])

    checked = json.loads(fleet.nestlab("check", "-f", str(lab_file), "--json").stdout)
    assert [(n["node"], n["uri"], n["error"]) for n in checked["nodes"]] == [
        ("node-a", a.uri, None), ("node-b", b.uri, None)]
    for node in checked["nodes"]:  # facts read over libvirt and SSH, not this host's
        memory = next(c for c in node["checks"] if c["name"] == "memory")
        assert memory["status"] == "ok", memory
    assert (Path(fleet.env["NESTLAB_HOME"]) / "nodes" / "known_hosts").read_text().count(
        "ssh-ed25519") == 2  # each node's host key pinned by nestlab's own SSH

    plan = fleet.nestlab("plan", "-f", str(lab_file), "--json", check=True)
    seats = json.loads(plan.stdout)["seats"]
    assert [(s["lab"], s["node"], s["uri"]) for s in seats] == [
        ("fleet-s01", "node-a", a.uri), ("fleet-s02", "node-b", b.uri)]
    steps = {(s["guest"], s["step"]): s["state"] for s in seats[0]["steps"]}
    assert steps[("L0", "image debian-12 on node node-a")] == "create"
    assert steps[("kvm1", "files on node node-a")] == "create"

    # Seat 1 also through up's own steps that copy to node-a (node-b shares this host's
    # folders: see the copy test below).
    defined = fleet.in_controller(sys.executable, "-m", "tests.system.fleet_lab", "define",
                                  str(lab_file), "node-a", check=True).stdout.split("\n")
    assert [line.split()[:2] for line in defined if line] == [
        ["fleet-s01", "node-a"], ["fleet-s02", "node-b"]]
    assert node_objects(fleet, a.uri) == ["nestlab-fleet-s01-kvm1", "nestlab-fleet-s01-lab"]
    assert node_objects(fleet, b.uri) == ["nestlab-fleet-s02-kvm1", "nestlab-fleet-s02-lab"]
    l1_folder = home / "labs" / "fleet-s01" / "hosts" / "kvm1"
    on_a = a.folder / "data" / "nestlab_home" / l1_folder.relative_to(home)
    for name in ("disk.qcow2", "vmlinuz", "initrd.img", "seed.iso", "console.log"):
        assert (on_a / name).read_bytes() == (l1_folder / name).read_bytes(), name
        assert (on_a / f"{name}.sha256").exists()
    backing = json.loads(subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(on_a / "disk.qcow2")],
        capture_output=True, text=True, check=True).stdout)["backing-filename"]
    cache = Path(fleet.env["NESTLAB_CACHE"])
    base_on_a = a.folder / "data" / "nestlab_cache" / Path(backing).relative_to(cache)
    assert base_on_a.read_bytes() == Path(backing).read_bytes()  # node-a's own base image
    again = json.loads(fleet.nestlab("plan", "-f", str(lab_file), "--seat", "1", "--json",
                                     check=True).stdout)
    steps = {(s["guest"], s["step"]): s["state"] for s in again["steps"]}
    assert steps[("L0", "image debian-12 on node node-a")] == "present"
    assert steps[("kvm1", "files on node node-a")] == "present"
    # The L1's console is logged on its node: `logs` reads it there (this host's is empty).
    (on_a / "console.log").write_text("kernel: booting\r\nsystemd: started\r\nkvm1 login: ")
    logs = fleet.nestlab("logs", "--lab", "fleet-s01", "kvm1", "-n", "2", check=True)
    assert logs.stdout.splitlines() == ["systemd: started", "kvm1 login: "]
    assert "in node node-a" in logs.stderr
    assert (l1_folder / "console.log").read_bytes() == b""

    rows = json.loads(fleet.nestlab("status", "-f", str(lab_file), "--json",
                                    check=True).stdout)["seats"]
    assert [(r["lab"], r["node"], r["state"]) for r in rows] == [
        ("fleet-s01", "node-a", "not running"), ("fleet-s02", "node-b", "not running")]
    assert rows[0]["status"]["hosts"][0]["state"] == "shut off"
    text = fleet.nestlab("status", "-f", str(lab_file), check=True).stdout
    assert "node" in text.splitlines()[1] and "node-b" in text

    fleet.kill_libvirtd(b)
    started = time.monotonic()
    rows = json.loads(fleet.nestlab("status", "-f", str(lab_file), "--json",
                                    check=True).stdout)["seats"]
    assert time.monotonic() - started < 60
    assert [(r["lab"], r["state"]) for r in rows] == [("fleet-s01", "not running"),
                                                      ("fleet-s02", "unknown")]
    assert rows[1]["problem"].startswith(f"node node-b does not answer (cannot connect to "
                                         f"libvirt at {b.uri}")

    down = fleet.nestlab("down", "-f", str(lab_file), "--json", "-q")
    assert down.returncode == 1
    seats_down = json.loads(down.stdout)["seats"]
    assert seats_down[0]["result"]["removed_domains"] == ["nestlab-fleet-s01-kvm1"]
    assert seats_down[0]["result"]["removed_networks"] == ["nestlab-fleet-s01-lab"]
    assert seats_down[0]["result"]["removed_node_folders"] == [str(l1_folder)]
    assert not on_a.exists() and base_on_a.exists()  # the L1's copies go, the image stays
    assert seats_down[1]["error"].startswith(f"node node-b does not answer (cannot connect "
                                             f"to libvirt at {b.uri}")
    assert node_objects(fleet, a.uri) == []

    fleet.revive_libvirtd(b)
    fleet.nestlab("down", "-f", str(lab_file), "--purge", "--json", "-q", check=True)
    assert node_objects(fleet, b.uri) == []  # persistent definitions outlived the kill
    assert not (home / "labs" / "fleet-s02").exists()


def test_a_file_is_copied_to_a_node_once_checked_by_hash_and_never_onto_itself(
        fleet: Fleet) -> None:
    a, b = fleet.nodes
    folder = Path(fleet.env["NESTLAB_HOME"]) / "copies"
    folder.mkdir()
    disk = folder / "disk.img"
    disk.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # more than one chunk, not whole
    push = ("-m", "tests.system.fleet_lab", "push")
    assert fleet.in_controller(sys.executable, *push, a.uri, str(disk),
                               check=True).stdout == "copied\n"
    assert fleet.in_controller(sys.executable, *push, a.uri, str(disk),
                               check=True).stdout == "present\n"
    copy = a.folder / "data" / "nestlab_home" / "copies" / "disk.img"
    assert copy.read_bytes() == disk.read_bytes()  # the node's own copy, in its folder
    assert (copy.parent / "disk.img.sha256").read_text().strip() == \
        __import__("hashlib").sha256(disk.read_bytes()).hexdigest()
    assert copy.stat().st_mode & 0o777 == 0o600
    empty = folder / "console.log"  # an L1's console log is copied before it has a line
    empty.touch()
    assert fleet.in_controller(sys.executable, *push, a.uri, str(empty),
                               check=True).stdout == "copied\n"
    assert (copy.parent / "console.log").read_bytes() == b""
    disk.write_bytes(b"changed")
    assert fleet.in_controller(sys.executable, *push, a.uri, str(disk),
                               check=True).stdout == "copied\n"
    assert copy.read_bytes() == b"changed"

    base = folder / "base.qcow2"  # three seats on one node start at once: one copy
    base.write_bytes(os.urandom(2 * 1024 * 1024))
    assert fleet.in_controller(sys.executable, *push, a.uri, str(base), "3",
                               check=True).stdout.split() == ["copied", "present", "present"]

    shared = fleet.in_controller(sys.executable, *push, b.uri, str(disk))
    assert shared.returncode != 0
    assert f"sees this host's own {folder}" in shared.stderr
    assert disk.read_bytes() == b"changed"  # never overwritten with itself


def test_guests_on_a_node_are_reached_through_its_ssh(fleet: Fleet) -> None:
    a, _b = fleet.nodes
    # The node's own sshd stands for a guest's: reached by a channel the node opens.
    out = fleet.in_controller(sys.executable, "-m", "tests.system.fleet_lab", "banner",
                              a.uri, a.address, "22", check=True).stdout
    assert out.startswith("SSH-2.0-OpenSSH")


def test_prerequisites_are_installed() -> None:
    assert shutil.which("ssh-keygen") and shutil.which("virt-ssh-helper")
