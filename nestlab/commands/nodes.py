"""The nodes a lab may run on, and which node each seat runs on (placed once, recorded).

The nodes are the lab file's ``nodes:``, or ``--node URI`` given on the command
line (which replace them). Each seat's node is kept in its record (``LabRecord.node``
and ``uri``): every later command reaches the seat there, and a later `up` places
only the seats that have no record yet (``host.placement``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import TypeAdapter, ValidationError

from nestlab.errors import InputError, NestlabError
from nestlab.host.check import Check, HostReport, Status, check_host
from nestlab.host.facts import HostFacts
from nestlab.host.placement import NodeRoom, PlacementMoved, SeatNeed, place
from nestlab.lab.model import Lab, Node, NodeUri
from nestlab.state.paths import lab_dir
from nestlab.state.record import load_record, record_path
from nestlab.virt.nodefiles import needs_copies

ANSWER_TIMEOUT = 20.0
"""How long a node may take to say how much room it has (an SSH handshake included)."""
_NODE_URI = TypeAdapter(NodeUri)
_NAME = re.compile(r"[a-z]([a-z0-9-]*[a-z0-9])?")


def lab_nodes(lab: Lab, uris: Sequence[str]) -> tuple[Node, ...]:
    """``--node URI`` (each one a node, named after its host) or else the lab file's nodes;
    a bad URI is an ``InputError`` naming the option."""
    if not uris:
        return lab.nodes
    nodes: list[Node] = []
    for index, uri in enumerate(uris, start=1):
        try:
            checked = _NODE_URI.validate_python(uri)
        except ValidationError as exc:
            message = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise InputError(f"--node: {message}") from None
        if any(n.uri == checked for n in nodes):
            raise InputError(f"--node {checked} is given twice")
        nodes.append(Node(name=_node_name(checked, index, {n.name for n in nodes}),
                          uri=checked))
    return tuple(nodes)


def refuse_this_host_options(nodes: Sequence[Node], sandbox: bool,
                             facts_file: Path | None = None) -> None:
    """``--sandbox`` and ``--facts`` are about this host, and a lab with nodes runs on, and
    is decided by, its nodes: every command that takes them refuses them there (exit 2),
    before any node is asked."""
    if not nodes:
        return
    if sandbox:
        raise InputError("--sandbox runs a lab in a private libvirtd on this host; a lab "
                         "with nodes (nodes: or --node) runs on its nodes",
                         hint="Leave out --sandbox.")
    if facts_file is not None:
        raise InputError("--facts decides for one recorded host; a lab with nodes (nodes: "
                         "or --node) is decided by each node's own facts",
                         hint="Leave out --facts.")


def _node_name(uri: str, index: int, taken: set[str]) -> str:
    """A node's name from its URI's host (``qemu+ssh://root@lab-7.example/system`` ->
    ``lab-7``), or ``nodeN`` where the host is an address or makes no name."""
    host = urlsplit(uri).hostname or ""
    label = host.split(".")[0]
    if _NAME.fullmatch(label) and len(label) <= 20 and label not in taken:
        return label
    while f"node{index}" in taken:  # a host named like the fallback came first
        index += 1
    return f"node{index}"


def node_refusal(lab: Lab, uri: str, node: str | None) -> InputError | None:
    """Why ``lab`` cannot run on the node at ``uri`` whatever that node's facts, or None:
    `up` raises it, `plan` too, and `check` shows it as a failed check."""
    if needs_copies(uri, node) and any(h.os.profile.family == "windows" for h in lab.hosts):
        return InputError(f"lab {lab.name} has Windows L1s: nestlab reaches them over WinRM "
                          "from this host, not yet through a node",
                          hint="Run it at --connect, without nodes.")
    return None


@dataclass(frozen=True)
class NodeCheck:
    """`check` of one node: its verdict for one seat, or why it could not be asked."""

    node: Node
    report: HostReport | None
    error: str | None = None


def check_nodes(lab: Lab, nodes: Sequence[Node],
                read_facts: Callable[[str], HostFacts]) -> list[NodeCheck]:
    """Every node's host check for one seat of ``lab`` (a seat runs on one node whole),
    all asked at once; a node that cannot be asked is reported, not raised."""
    one_seat = lab.model_copy(update={"seats": None})

    def one(node: Node) -> NodeCheck:
        try:
            report = check_host(read_facts(node.uri), one_seat)
        except NestlabError as exc:
            return NodeCheck(node, None, exc.message)
        refusal = node_refusal(one_seat, node.uri, node.name)
        if refusal is not None:
            report = replace(report, checks=(*report.checks, Check(
                "windows-on-node", Status.fail, refusal.message, refusal.hint)))
        return NodeCheck(node, report)

    with ThreadPoolExecutor(max_workers=max(1, len(nodes)), thread_name_prefix="check") as pool:
        return list(pool.map(one, nodes))


def seat_need(lab: Lab) -> SeatNeed:
    """What one seat takes: its L1s' memory, and their vCPUs (1 where the lab file sets
    none: the least the plan gives an L1)."""
    return SeatNeed(lab.name, sum(h.memory for h in lab.hosts),
                    sum(h.cpus or 1 for h in lab.hosts))


def kept_nodes(labs: Sequence[Lab], nodes: Sequence[Node],
               root: Path | None = None) -> dict[str, str]:
    """The node each seat with a record was placed on. A seat brought up without nodes
    (at --connect) cannot be moved onto one: ``PlacementMoved``."""
    kept = {}
    for seat in labs:
        folder = lab_dir(seat.name, root)
        if not record_path(folder).exists():
            continue
        record = load_record(folder)
        if record.node is None:
            raise PlacementMoved(
                f"{seat.name} was brought up at {record.uri}, not on one of the lab's "
                f"nodes ({', '.join(n.name for n in nodes)}); a seat never moves",
                hint=f"Take it down first (`nestlab down --lab {seat.name}`).")
        kept[seat.name] = record.node
    return kept


def read_rooms(nodes: Sequence[Node], labs: Sequence[Lab], kept: dict[str, str],
               timeout: float = ANSWER_TIMEOUT) -> list[NodeRoom]:
    """Every node's room, asked all at once; one that does not answer within ``timeout``
    counts as not answering, and the others are not kept waiting."""
    from nestlab.host.nodefacts import read_room

    seated = {n.name: sum(1 for s in labs if kept.get(s.name) == n.name) for n in nodes}
    answers: dict[str, NodeRoom] = {}

    def ask(node: Node) -> None:
        answers[node.name] = read_room(node, seated[node.name])

    # Daemon threads: a connection that never answers (libvirt's ssh waits for a banner
    # that never comes) is left behind without keeping nestlab from exiting.
    threads = [threading.Thread(target=ask, args=(node,), daemon=True,
                                name=f"node-{node.name}") for node in nodes]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout  # one wait for all of them, not one each
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    return [answers.get(node.name) or NodeRoom(
        node.name, 0, 0, node.weight, node.max_seats, seated[node.name], answers=False,
        error=f"no answer within {timeout:.0f}s") for node in nodes]


def placement(labs: Sequence[Lab], nodes: Sequence[Node],
              root: Path | None = None) -> dict[str, Node]:
    """Each seat's node: kept where it is, new ones placed by the room the nodes report."""
    kept = kept_nodes(labs, nodes, root)
    by_name = {n.name: n for n in nodes}
    if all(s.name in kept for s in labs) and all(kept[s.name] in by_name for s in labs):
        return {s.name: by_name[kept[s.name]] for s in labs}  # no node need be asked
    rooms = read_rooms(nodes, labs, kept)
    placed = place([seat_need(s) for s in labs], rooms, kept)
    return {seat: by_name[name] for seat, name in placed.items()}
