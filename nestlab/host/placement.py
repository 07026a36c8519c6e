"""Which node each seat runs on: decided from what the nodes report, with no I/O.

A seat (or a lab without seats) is placed on one node as a whole: its L1s and
their L2s never span nodes. A seat placed by an earlier `up` stays where it is
(its record says where); only new seats are placed. A new seat goes to the node
with the most room left, where room is how many such seats the node's free memory
holds, times its weight (the first node listed wins a tie);
a node takes it only while the seats given to it in this run fit in its free
memory and its CPUs (no vCPU beyond a CPU: under emulation each busy vCPU takes a
whole CPU) and its ``max_seats`` allows. Nothing fits: ``NoRoom``, naming each
node and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nestlab.errors import HostCannotRunLab, InputError
from nestlab.lab.model import human_size
from nestlab.plural import counted


@dataclass(frozen=True)
class NodeRoom:
    """What one node reports it has free (``answers`` False: it did not answer)."""

    name: str
    memory: int
    """Bytes of memory free for guests (free, buffers and page cache)."""
    cpus: int
    """CPUs not taken by the vCPUs of the domains running there."""
    weight: int = 1
    max_seats: int | None = None
    seats: int = 0
    """Seats of this lab already placed there by earlier runs."""
    answers: bool = True
    error: str | None = None


@dataclass(frozen=True)
class SeatNeed:
    """What one seat (or a lab without seats) takes on the node it is placed on."""

    lab: str
    memory: int
    vcpus: int


class NoRoom(HostCannotRunLab):
    """No node can take a seat: exit 1, like a host that cannot run the lab."""


class PlacementMoved(InputError):
    """A seat is placed on a node the lab no longer names: exit 2."""


def place(seats: Sequence[SeatNeed], nodes: Sequence[NodeRoom],
          kept: Mapping[str, str]) -> dict[str, str]:
    """Each seat's node name: ``kept`` (seat lab -> node, from earlier runs) as it is, the
    others by room left. Raises ``PlacementMoved`` for a kept node no longer named,
    ``NoRoom`` for a seat no node can take."""
    names = [n.name for n in nodes]
    placed: dict[str, str] = {}
    for seat in seats:
        if seat.lab in kept:
            if kept[seat.lab] not in names:
                raise PlacementMoved(
                    f"{seat.lab} runs on node {kept[seat.lab]}, which is not among the "
                    f"lab's nodes ({', '.join(names) or 'none'}); a seat never moves",
                    hint=f"Name node {kept[seat.lab]} again, or take the seat down first "
                         f"(`nestlab down --lab {seat.lab}`).")
            placed[seat.lab] = kept[seat.lab]
    memory = {n.name: n.memory for n in nodes}
    cpus = {n.name: n.cpus for n in nodes}
    count = {n.name: n.seats for n in nodes}
    for seat in seats:
        if seat.lab in placed:
            continue
        fitting = [n for n in nodes if _refusal(n, seat, memory, cpus, count) is None]
        if not fitting:
            raise NoRoom(
                f"no node can take {seat.lab} ({human_size(seat.memory)}, "
                f"{counted(seat.vcpus, 'vCPU')}): " + "; ".join(
                    f"{n.name}: {_refusal(n, seat, memory, cpus, count)}" for n in nodes),
                hint="Add a node (nodes: or --node URI), free memory on one, or bring up "
                     "fewer seats.")
        # Counted in whole seats, so that a few MiB a node's free memory moves between
        # `plan` and `up` do not move a seat; the first listed wins a tie.
        best = max(fitting, key=lambda n: memory[n.name] * n.weight // max(seat.memory, 1))
        placed[seat.lab] = best.name
        memory[best.name] -= seat.memory
        cpus[best.name] -= seat.vcpus
        count[best.name] += 1
    return {seat.lab: placed[seat.lab] for seat in seats}


def _refusal(node: NodeRoom, seat: SeatNeed, memory: Mapping[str, int],
             cpus: Mapping[str, int], count: Mapping[str, int]) -> str | None:
    """Why ``node`` cannot take ``seat`` now (None: it can)."""
    if not node.answers:
        return f"does not answer ({node.error or 'no reason given'})"
    if node.max_seats is not None and count[node.name] >= node.max_seats:
        return f"has its {counted(node.max_seats, 'seat')} (max_seats)"
    if memory[node.name] < seat.memory:
        return f"{human_size(max(memory[node.name], 0))} of memory left"
    if cpus[node.name] < seat.vcpus:
        return f"{counted(max(cpus[node.name], 0), 'CPU')} left"
    return None
