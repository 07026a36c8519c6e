"""Seats: one copy of a lab per student, each an ordinary lab of its own.

Seat k (1-based) of lab ``course`` is the lab ``course-s0k`` (``seat_lab_name``):
the same L1s and L2s, its own libvirt names, folder, keys and record. Its L0
networks are the lab's, moved so that no two seats share an address: seat 1
has the lab file's own CIDRs, seat k each network's CIDR moved up by k-1
blocks of that network's own size (10.77.0.0/24: seat 1 10.77.0.0/24, seat 2
10.77.1.0/24, seat 3 10.77.2.0/24). The L2 networks inside each L1 stay as
they are: every seat's L1s are separate machines.

Seats that would leave the address space, the private range the network is
in, or enter a special range, or overlap another network of the lab (in any
seat) or an L1's own L2 network, are refused with the lab file's key path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from nestlab.errors import LabFileError, Problem
from nestlab.lab.model import NOT_FOR_A_LAB, GuestNetworkMode, Lab
from nestlab.plural import counted
from nestlab.state.paths import LAB_NAME_MAX, SEATED_NAME_MAX, seat_lab_name

_PRIVATE = (ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("172.16.0.0/12"),
            ipaddress.IPv4Network("192.168.0.0/16"))

KeyPath = tuple[str | int, ...]


def seat_cidr(cidr: ipaddress.IPv4Network, seat: int) -> ipaddress.IPv4Network:
    """Seat ``seat``'s copy of an L0 network: ``seat - 1`` blocks of its size further up.
    ``ValueError`` past 255.255.255.255."""
    start = int(cidr.network_address) + (seat - 1) * cidr.num_addresses
    return ipaddress.IPv4Network((start, cidr.prefixlen))


def seat_lab(lab: Lab, seat: int) -> Lab:
    """Seat ``seat`` of ``lab`` as a lab of its own (no seats of its own); the seats must
    have been checked (``seat_problems``)."""
    networks = tuple(n.model_copy(update={"cidr": seat_cidr(n.cidr, seat)})
                     for n in lab.networks)
    return lab.model_copy(update={"lab": seat_lab_name(lab.name, seat), "networks": networks,
                                  "seats": None})


def seat_labs(lab: Lab, seats: int | None = None, filename: str = "<lab>") -> list[Lab]:
    """Every seat of ``lab`` as its own lab; ``seats`` overrides the lab file's
    (``up --seats N``). A lab without seats is itself, unchanged. ``LabFileError`` for
    seats the lab cannot have."""
    count = seats if seats is not None else lab.seats
    if count is None:
        return [lab]
    problems = [Problem(_path(p), message) for p, message in seat_problems(lab, count)]
    if problems:
        raise LabFileError(filename, problems)
    return [seat_lab(lab, seat) for seat in range(1, count + 1)]


def _path(path: KeyPath) -> str:
    return ".".join(f"{p}" if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")


def seat_problems(lab: Lab, seats: int) -> Iterator[tuple[KeyPath, str]]:
    """Why ``lab`` cannot have ``seats`` seats: (key path, message) per problem."""
    if len(lab.name) > SEATED_NAME_MAX:
        yield (("lab",), f"{lab.name!r} is too long for a lab with seats: at most "
                         f"{SEATED_NAME_MAX} characters, leaving room for its seats' "
                         f"'-s01'... (lab names have at most {LAB_NAME_MAX})")
    blocks: list[tuple[int, int, int, int]] = []  # (first, last, network index, seat)
    for i, net in enumerate(lab.networks):
        last = _last_seat_problem(net.cidr, seats)
        if last is not None:
            yield (("networks", i, "cidr"), last)
            continue
        for seat in range(1, seats + 1):
            cidr = seat_cidr(net.cidr, seat)
            blocks.append((int(cidr.network_address), int(cidr.broadcast_address), i, seat))
    yield from _overlaps(lab, blocks)
    yield from _guest_network_overlaps(lab, seats)


def _last_seat_problem(cidr: ipaddress.IPv4Network, seats: int) -> str | None:
    """Whether the seats' copies of ``cidr`` stay in the address space, out of the special
    ranges and inside the private range ``cidr`` is in."""
    span = (f"{counted(seats, 'seat')} need {counted(seats, 'block')} of /{cidr.prefixlen} "
            f"from {cidr}")
    try:
        last = seat_cidr(cidr, seats)
    except ValueError:
        return f"{span}, past the end of the address space; choose a lower range"
    first, top = cidr.network_address, last.broadcast_address
    for special, what in NOT_FOR_A_LAB.items():
        if special.network_address <= top and special.broadcast_address >= first:
            return f"{span}, up to {last}, which reaches {what}; choose a lower range"
    home = next((p for p in _PRIVATE if cidr.subnet_of(p)), None)
    if home is not None and not last.subnet_of(home):
        return (f"{span}, up to {last}, which leaves the private range {home}; choose a "
                "lower range or a larger private one")
    return None


def _overlaps(lab: Lab, blocks: list[tuple[int, int, int, int]]
              ) -> Iterator[tuple[KeyPath, str]]:
    """Seat copies of two different lab networks that overlap, once per pair of networks.
    Sorted by address, a block can only overlap the blocks that start before it ends."""
    reported: set[tuple[int, int]] = set()
    blocks.sort()
    for position, (_first, last, i, seat) in enumerate(blocks):
        for other_first, _other_last, j, other_seat in blocks[position + 1:]:
            if other_first > last:
                break
            if i == j or (min(i, j), max(i, j)) in reported:
                continue
            reported.add((min(i, j), max(i, j)))
            # Named first: the later network, the one the key path points at.
            (late, late_seat), (early, early_seat) = sorted([(i, seat), (j, other_seat)],
                                                            reverse=True)
            here = seat_cidr(lab.networks[late].cidr, late_seat)
            there = seat_cidr(lab.networks[early].cidr, early_seat)
            yield (("networks", late, "cidr"),
                   f"seat {late_seat}'s copy of network {lab.networks[late].name!r} ({here}) "
                   f"overlaps seat {early_seat}'s copy of {lab.networks[early].name!r} "
                   f"({there}): each "
                   "seat moves a network up by one block of its size; move the lab's "
                   "networks further apart")


def _guest_network_overlaps(lab: Lab, seats: int) -> Iterator[tuple[KeyPath, str]]:
    """A seat's copy of an L1's L0 network must not overlap that L1's L2 network."""
    for i, host in enumerate(lab.hosts):
        if host.guest_network.mode is GuestNetworkMode.bridged:
            continue
        guest_cidr = lab.guest_cidr(i)
        for name in host.networks:
            net = next((n for n in lab.networks if n.name == name), None)
            if net is None or _last_seat_problem(net.cidr, seats) is not None:
                continue
            seat = next((s for s in range(1, seats + 1)
                         if seat_cidr(net.cidr, s).overlaps(guest_cidr)), None)
            if seat is not None:
                yield (("hosts", i, "guest_network", "cidr"),
                       f"{guest_cidr} overlaps {seat_cidr(net.cidr, seat)}, seat {seat}'s "
                       f"copy of L1 network {name!r}; give the L2 network another range")
