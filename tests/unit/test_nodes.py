"""Nodes on the command line and the placement `plan` shows: --node URIs become nodes,
each seat goes to one node whole, and a seat placed by an earlier `up` stays there."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from nestlab.cli import main
from nestlab.commands import nodes as nodes_module
from nestlab.commands.nodes import kept_nodes, lab_nodes, placement
from nestlab.errors import InputError
from nestlab.host import nodefacts
from nestlab.host.placement import NodeRoom, PlacementMoved
from nestlab.lab.labfile import parse_lab
from nestlab.lab.model import GiB, Node
from nestlab.lab.seats import seat_labs
from nestlab.state.paths import lab_dir
from nestlab.state.record import LabRecord, claim_lab_dir, save_record
from tests.conftest import FACTS

COURSE = """\
lab: course
seats: 3
networks:
  - name: lab
    cidr: 10.91.0.0/24
hosts:
  - name: kvm1
    os: debian-12
    memory: 1GiB
    networks: [lab]
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "home"


@pytest.fixture
def rooms(monkeypatch: pytest.MonkeyPatch) -> dict[str, NodeRoom]:
    """What each node reports (by URI), instead of asking a libvirt; the test's to fill.
    The nodes asked are recorded under "asked"."""
    reported: dict[str, NodeRoom] = {}
    asked: list[str] = []

    def read_room(node: Node, seated: int) -> NodeRoom:
        asked.append(node.uri)
        room = reported[node.uri]
        return NodeRoom(node.name, room.memory, room.cpus, node.weight, node.max_seats, seated,
                        room.answers, room.error)

    monkeypatch.setattr(nodefacts, "read_room", read_room)
    reported["asked"] = asked  # type: ignore[assignment]
    return reported


def test_node_uris_become_nodes_named_after_their_hosts() -> None:
    lab = parse_lab(COURSE)
    nodes = lab_nodes(lab, ["qemu+ssh://root@lab-a.example/system",
                            "qemu+ssh://root@192.0.2.9:2222/system"])
    assert [(n.name, n.uri) for n in nodes] == [
        ("lab-a", "qemu+ssh://root@lab-a.example/system"),
        ("node2", "qemu+ssh://root@192.0.2.9:2222/system")]
    assert lab_nodes(lab, []) == ()


def test_a_node_named_after_its_host_keeps_the_fallback_names_apart() -> None:
    nodes = lab_nodes(parse_lab(COURSE), ["qemu+ssh://root@node2.invalid/system",
                                          "qemu+ssh://root@192.0.2.9/system"])
    assert [n.name for n in nodes] == ["node2", "node3"]


def test_nodes_that_never_answer_cost_one_wait_and_do_not_hold_the_exit() -> None:
    """libvirt's ssh waits for ever on a port that accepts and never speaks SSH: `plan`
    said so after 20 s for each such node, one after another, then never exited."""
    program = textwrap.dedent("""\
        import threading, time
        import nestlab.host.nodefacts as nodefacts
        from nestlab.commands.nodes import read_rooms
        from nestlab.lab.model import Node
        nodefacts.read_room = lambda node, seated: threading.Event().wait()
        nodes = [Node(name=f"n{i}", uri=f"test:///n{i}") for i in range(3)]
        started = time.monotonic()
        rooms = read_rooms(nodes, [], {}, timeout=1.0)
        print(round(time.monotonic() - started), [r.answers for r in rooms])
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=30, check=True)
    assert done.stdout == "1 [False, False, False]\n"


@pytest.mark.parametrize(("uris", "expected"), [
    (["ssh://node1"], "--node: expected a libvirt URI over SSH like "
                      "qemu+ssh://root@node1/system"),
    (["qemu+ssh://root@node1:abc/system"], "--node: 'qemu+ssh://root@node1:abc/system': the "
                                           "port after the host must be a number"),
    (["qemu+ssh:///system"], "--node: 'qemu+ssh:///system' names no host"),
    (["qemu:///system", "qemu:///system"], "--node qemu:///system is given twice"),
])
def test_bad_node_options_are_input_errors(uris: list[str], expected: str) -> None:
    with pytest.raises(InputError) as caught:
        lab_nodes(parse_lab(COURSE), uris)
    assert caught.value.message.startswith(expected)


def test_placement_is_recorded_and_kept_while_rooms_change(
        home: Path, rooms: dict[str, NodeRoom]) -> None:
    lab = parse_lab(COURSE)
    nodes = lab_nodes(lab, ["test:///a", "test:///b"])
    rooms["test:///a"] = NodeRoom("a", 8 * GiB, 8)
    rooms["test:///b"] = NodeRoom("b", 8 * GiB, 8)
    labs = seat_labs(lab)
    first = {seat: node.name for seat, node in placement(labs, nodes).items()}
    assert first == {"course-s01": "node1", "course-s02": "node2", "course-s03": "node1"}
    for seat in labs[:2]:  # seats 1 and 2 were brought up where they were placed
        folder = lab_dir(seat.name)
        claim_lab_dir(folder, seat.name)
        node = next(n for n in nodes if n.name == first[seat.name])
        save_record(folder, LabRecord(seat.name, "", node.uri, False, None, node=node.name))
    rooms["test:///a"] = NodeRoom("a", 1 * GiB, 8)  # node1 has filled up since
    again = {seat: node.name for seat, node in placement(labs, nodes).items()}
    assert again == {"course-s01": "node1", "course-s02": "node2", "course-s03": "node2"}


def test_when_every_seat_is_placed_no_node_is_asked(
        home: Path, rooms: dict[str, NodeRoom]) -> None:
    lab = parse_lab(COURSE.replace("seats: 3", "seats: 1"))
    nodes = lab_nodes(lab, ["test:///a"])
    folder = lab_dir("course-s01")
    claim_lab_dir(folder, "course-s01")
    save_record(folder, LabRecord("course-s01", "", "test:///a", False, None, node="node1"))
    assert placement(seat_labs(lab), nodes)["course-s01"].uri == "test:///a"
    assert rooms["asked"] == []  # type: ignore[comparison-overlap]


def test_a_seat_up_without_nodes_is_not_moved_onto_one(home: Path) -> None:
    lab = parse_lab(COURSE)
    folder = lab_dir("course-s01")
    claim_lab_dir(folder, "course-s01")
    save_record(folder, LabRecord("course-s01", "", "qemu:///system", False, None))
    with pytest.raises(PlacementMoved) as caught:
        kept_nodes(seat_labs(lab), lab_nodes(lab, ["test:///a"]))
    assert "course-s01 was brought up at qemu:///system" in caught.value.message


def test_a_node_that_does_not_answer_in_time_is_not_waited_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    release = threading.Event()

    def read_room(node: Node, seated: int) -> NodeRoom:
        if node.name == "slow":
            release.wait(10)
        return NodeRoom(node.name, 8 * GiB, 8)

    monkeypatch.setattr(nodefacts, "read_room", read_room)
    nodes = [Node(name="slow", uri="test:///slow"), Node(name="quick", uri="test:///quick")]
    try:
        found = nodes_module.read_rooms(nodes, [], {}, timeout=0.5)
    finally:
        release.set()
    assert [(r.name, r.answers) for r in found] == [("slow", False), ("quick", True)]
    assert found[0].error == "no answer within 0s"


def test_plan_shows_the_node_of_each_seat(home: Path, rooms: dict[str, NodeRoom],
                                          tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import libvirt

    from nestlab.commands import context
    from tests.conftest import facts
    from tests.fakes.linux import TESTDRIVER

    # Each node's facts, and its libvirt (our test driver) for the steps plan shows.
    monkeypatch.setattr("nestlab.host.facts.read_host_facts",
                        lambda _uri, _root: facts("amd-nested-1"))
    monkeypatch.setattr(context, "connect", lambda _uri: libvirt.open(f"test://{TESTDRIVER}"))
    lab_file = tmp_path / "course.yaml"
    lab_file.write_text(COURSE)
    # 1GiB seats: node1 takes the first (more left), then wins the tie, then is full.
    rooms["test:///default"] = NodeRoom("", 2 * GiB + GiB // 2, 8)
    rooms["test:///other"] = NodeRoom("", GiB + GiB // 2, 8)
    result = CliRunner().invoke(main, [
        "plan", "-f", str(lab_file), "--json",
        "--node", "test:///default", "--node", "test:///other"])
    assert result.exit_code == 0, result.stderr
    seats = json.loads(result.stdout)["seats"]
    assert [(s["lab"], s["node"], s["uri"]) for s in seats] == [
        ("course-s01", "node1", "test:///default"), ("course-s02", "node1", "test:///default"),
        ("course-s03", "node2", "test:///other")]


def test_plan_refuses_with_every_nodes_reason_when_nothing_fits(
        home: Path, rooms: dict[str, NodeRoom], tmp_path: Path) -> None:
    lab_file = tmp_path / "course.yaml"
    lab_file.write_text(COURSE)
    rooms["test:///default"] = NodeRoom("", 512 * 1024**2, 8)
    rooms["test:///other"] = NodeRoom("", 0, 0, answers=False, error="connection refused")
    result = CliRunner().invoke(main, [
        "plan", "-f", str(lab_file), "--node", "test:///default", "--node", "test:///other"])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "nestlab: error: no node can take course-s01 (1.0GiB, 1 vCPU): node1: 512MiB of "
        "memory left; node2: does not answer (connection refused)")
    assert "Traceback" not in result.stderr


def test_check_runs_per_node_and_says_which_node_cannot_take_a_seat(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nestlab.errors import NestlabError
    from tests.conftest import facts

    def read(uri: str, _root: Path) -> object:
        if uri == "test:///gone":
            raise NestlabError("node test:///gone: libvirt does not answer (refused)")
        return facts("amd-nested-1" if uri == "test:///good" else "intel-nested-n")

    monkeypatch.setattr("nestlab.host.facts.read_host_facts", read)
    lab_file = tmp_path / "course.yaml"
    lab_file.write_text(COURSE.replace("seats: 3\n", "seats: 3\naccel: kvm\n"))
    args = ["check", "-f", str(lab_file), "--node", "test:///good", "--node",
            "test:///nested-off", "--node", "test:///gone"]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 1
    checked = json.loads(result.stdout)
    assert checked["can_run"] is False
    assert [(n["node"], n["can_run"]) for n in checked["nodes"]] == [
        ("node1", True), ("node2", False), ("node3", False)]
    assert checked["nodes"][2]["error"] == ("node test:///gone: libvirt does not answer "
                                            "(refused)")
    text = CliRunner().invoke(main, args).stdout
    assert "node node1 (test:///good), for one seat:" in text
    assert "Node node1 can run lab course." in text
    last = " ".join(text[text.rindex("Cannot take a seat"):].split())  # unwrapped
    assert last.startswith("Cannot take a seat: node2 (nested") and \
        "node3 (node test:///gone" in last


def test_windows_l1s_are_not_sent_to_a_node_yet(home: Path) -> None:
    from nestlab.commands.up import _refuse_another_node
    from nestlab.lab.labfile import load_lab
    from tests.conftest import EXAMPLES

    windows = load_lab(EXAMPLES / "windows-hyperv.yaml")
    with pytest.raises(InputError) as caught:
        _refuse_another_node(windows, lab_dir(windows.name), "qemu+ssh://root@n1/system",
                             "n1")
    assert "has Windows L1s" in caught.value.message
    _refuse_another_node(windows, lab_dir(windows.name), "qemu:///system", None)


_THIS_HOST_OPTIONS = [
    ("check", "--sandbox"), ("plan", "--sandbox"), ("up", "--sandbox"),
    ("check", "--facts"), ("plan", "--facts"),  # `up` has no --facts
]


@pytest.mark.parametrize("nodes_from", ["--node", "nodes:"])
def test_sandbox_and_facts_are_refused_with_nodes_by_every_command_alike(
        home: Path, rooms: dict[str, NodeRoom], tmp_path: Path, nodes_from: str) -> None:
    """--sandbox and --facts are about this host; `check`, `plan` and `up` each refuse
    them with nodes in the same words, before any node is asked."""
    lab_file = tmp_path / "course.yaml"
    args: list[str] = []
    if nodes_from == "--node":
        lab_file.write_text(COURSE)
        args = ["--node", "test:///a"]
    else:
        lab_file.write_text(COURSE + "nodes:\n  - name: a\n    uri: test:///a\n")
    said: dict[str, set[str]] = {"--sandbox": set(), "--facts": set()}
    for command, option in _THIS_HOST_OPTIONS:
        value = [str(FACTS / "amd-nested-1.json")] if option == "--facts" else []
        result = CliRunner().invoke(main, [command, "-f", str(lab_file), *args, option,
                                           *value])
        assert result.exit_code == 2, (command, option, result.stderr)
        said[option].add(result.stderr)
    assert said["--sandbox"] == {
        "nestlab: error: --sandbox runs a lab in a private libvirtd on this host; a lab "
        "with nodes (nodes: or --node) runs on its nodes\nhint: Leave out --sandbox.\n"}
    assert said["--facts"] == {
        "nestlab: error: --facts decides for one recorded host; a lab with nodes (nodes: "
        "or --node) is decided by each node's own facts\nhint: Leave out --facts.\n"}
    assert rooms["asked"] == []  # type: ignore[comparison-overlap]


WINDOWS_NODE = "qemu+ssh://root@127.0.0.1:1/system"  # loopback: never reached here


@pytest.fixture
def windows_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                rooms: dict[str, NodeRoom]) -> Path:
    """A Windows lab file and one node on another machine that has room for it and could
    run it (the node's facts a recorded Intel host's with nesting on)."""
    from tests.conftest import EXAMPLES, facts

    monkeypatch.setattr(nodefacts, "read_facts_over_ssh",
                        lambda _uri, _root: facts("intel-nested-y"))
    rooms[WINDOWS_NODE] = NodeRoom("", 64 * GiB, 16)
    lab_file = tmp_path / "windows-hyperv.yaml"
    lab_file.write_text((EXAMPLES / "windows-hyperv.yaml").read_text())
    return lab_file


def test_check_and_plan_refuse_windows_l1s_on_a_node_as_up_does(
        home: Path, windows_lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nestlab.commands import seats as seats_module

    built: list[str] = []
    monkeypatch.setattr(seats_module, "build_images", lambda lab, _lines: built.append(lab.name))
    args = ["-f", str(windows_lab), "--node", WINDOWS_NODE]
    up = CliRunner().invoke(main, ["up", *args])
    assert up.exit_code == 2
    refusal = up.stderr.removeprefix("nestlab: error: ").split("\nhint: ")[0]
    assert refusal == ("lab windows-hyperv has Windows L1s: nestlab reaches them over WinRM "
                       "from this host, not yet through a node")

    plan = CliRunner().invoke(main, ["plan", *args])
    assert (plan.exit_code, plan.stderr) == (2, up.stderr)
    seats = CliRunner().invoke(main, ["up", *args, "--seats", "2", "-q"])
    assert (seats.exit_code, seats.stderr) == (2, up.stderr)
    assert built == []  # refused before any image is built

    check = CliRunner().invoke(main, ["check", *args, "--json"])
    assert check.exit_code == 1
    node = json.loads(check.stdout)["nodes"][0]
    assert node["can_run"] is False
    failed = [c for c in node["checks"] if c["status"] == "fail"]
    assert [(c["name"], c["detail"]) for c in failed] == [("windows-on-node", refusal)]
    text = " ".join(CliRunner().invoke(main, ["check", *args]).stdout.split())
    assert f"FAIL windows-on-node {refusal}" in text
    assert text.endswith("Cannot take a seat: node1 (windows-on-node)")


def test_check_says_at_once_that_a_node_refuses_the_connection(
        home: Path, tmp_path: Path) -> None:
    """A closed SSH port is an answer: `check` reports the refusal, as `plan` does, rather
    than trying again until its wait for a booting guest runs out."""
    import socket

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = tmp_path / "id_node"  # a key, so that nothing but the closed port stops it
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()))
    with socket.socket() as probe:  # a loopback port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lab_file = tmp_path / "course.yaml"
    lab_file.write_text(COURSE)
    result = CliRunner().invoke(main, [
        "check", "-f", str(lab_file), "--json",
        "--node", f"qemu+ssh://root@127.0.0.1:{port}/system?keyfile={key}"])
    assert result.exit_code == 1
    node = json.loads(result.stdout)["nodes"][0]
    assert node["can_run"] is False
    assert node["error"] == (f"node qemu+ssh://root@127.0.0.1:{port}/system?keyfile={key} "
                             f"does not answer (no connection to 127.0.0.1 port {port} within "
                             "10s: Connection refused)")
