"""Read a lab file into a validated ``model.Lab``, or say exactly what is wrong.

Every problem is reported with the file, the key path and, where YAML gives
it, the line; all problems are collected before anything is raised.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nestlab.errors import LabFileError, Problem
from nestlab.model import (
    L1_RESERVED_MEMORY,
    WINDOWS_MIN_MEMORY,
    GuestNetworkMode,
    Lab,
    format_size,
)

DEFAULT_LAB_FILE = "nestlab.yaml"
LAB_FILE_LIMIT = 256 * 1024
"""Bytes a lab file may have: far more than any lab needs, far less than hurts."""

KeyPath = tuple[str | int, ...]


def load_lab(path: str | Path) -> Lab:
    """Parse and validate a lab file; raise ``LabFileError`` listing every problem."""
    filename = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabFileError(filename, [Problem("", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabFileError(filename, [Problem("", f"cannot read it: {exc}")]) from None
    return parse_lab(text, filename)


def parse_lab(text: str, filename: str = "<lab>") -> Lab:
    """Validate lab-file text; ``filename`` is only used in messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise LabFileError(filename, [Problem("", f"not valid YAML: {reason}", line)]) from None
    if root is None:
        raise LabFileError(filename, [Problem("", "the file is empty; expected a mapping")])

    lines: dict[KeyPath, int] = {}
    problems = list(_index_lines(root, (), lines))
    if problems:
        raise LabFileError(filename, problems)
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise LabFileError(filename, [Problem("", "expected a mapping at the top level", 1)])

    try:
        lab = Lab.model_validate(data)
    except ValidationError as exc:
        raise LabFileError(filename, _pydantic_problems(exc, lines)) from None

    problems = [_locate(path, message, lines) for path, message in check_lab(lab)]
    if problems:
        raise LabFileError(filename, problems)
    return lab


def _index_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> Iterator[Problem]:
    """Record the line of every key path; yield duplicate keys, which YAML would hide."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                yield Problem(
                    format_path((*path, key)), "duplicate key", key_node.start_mark.line + 1
                )
            seen.add(key)
            yield from _index_lines(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _index_lines(item, (*path, index), lines)


def format_path(path: KeyPath) -> str:
    """``('hosts', 0, 'memory')`` -> ``hosts[0].memory``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _locate(path: KeyPath, message: str, lines: dict[KeyPath, int]) -> Problem:
    """Attach the line of the longest prefix of ``path`` that the file has."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return Problem(format_path(path), message, lines[path[:end]])
    return Problem(format_path(path), message)


def _pydantic_problems(exc: ValidationError, lines: dict[KeyPath, int]) -> list[Problem]:
    problems = []
    for error in exc.errors():
        # Drop pydantic's internal markers (e.g. 'function-after[...]') from the path.
        path = tuple(p for p in error["loc"] if isinstance(p, int) or "[" not in str(p))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] == "string_pattern_mismatch":
            message = (
                f"{error['input']!r} is not a valid name: use lower-case letters, digits and "
                "'-', starting with a letter and not ending with '-'"
            )
        problems.append(_locate(path, message, lines))
    return problems


def check_lab(lab: Lab) -> Iterator[tuple[KeyPath, str]]:
    """Rules that relate several fields; yields (key path, message)."""
    # Emptiness is checked here, not with min_length: pydantic would also report a
    # list whose only item is invalid as empty.
    if not lab.networks:
        yield (("networks",), "a lab needs at least one network")
    if not lab.hosts:
        yield (("hosts",), "a lab needs at least one host")
    for i, host in enumerate(lab.hosts):
        if not host.networks:
            yield (("hosts", i, "networks"), "an L1 host needs at least one network")
    yield from _unique(("networks",), [n.name for n in lab.networks], "network", "name")
    yield from _unique(("hosts",), [h.name for h in lab.hosts], "host", "name")

    for i, net in enumerate(lab.networks):
        for j in range(i):
            other = lab.networks[j]
            if net.cidr.overlaps(other.cidr):
                yield (
                    ("networks", i, "cidr"),
                    f"{net.cidr} overlaps {other.cidr} of network {other.name!r}",
                )

    known = {n.name for n in lab.networks}
    all_guests: dict[str, str] = {}
    for i, host in enumerate(lab.hosts):
        for k, net_name in enumerate(host.networks):
            if net_name not in known:
                yield (
                    ("hosts", i, "networks", k),
                    f"unknown network {net_name!r}; the lab defines: {', '.join(sorted(known))}",
                )
        yield from _unique(("hosts", i, "networks"), list(host.networks), "network reference")

        if host.os.is_windows and len(host.name) > 15:
            yield (
                ("hosts", i, "name"),
                f"{host.name!r} is too long for a Windows computer name (NetBIOS: at most "
                "15 characters)",
            )
        if host.os.is_windows and host.memory < WINDOWS_MIN_MEMORY:
            yield (
                ("hosts", i, "memory"),
                f"a Windows Server 2016 L1 with Hyper-V needs at least "
                f"{format_size(WINDOWS_MIN_MEMORY)}, got {format_size(host.memory)}",
            )

        reserved = L1_RESERVED_MEMORY[host.os]
        wanted = sum(g.memory for g in host.guests)
        if host.guests and wanted + reserved > host.memory:
            yield (
                ("hosts", i, "memory"),
                f"its L2 guests need {format_size(wanted)} and the L1 keeps "
                f"{format_size(reserved)} for itself, but it has {format_size(host.memory)}",
            )

        guest_net = host.guest_network
        if guest_net.mode is GuestNetworkMode.bridged and not host.os.is_windows:
            yield (
                ("hosts", i, "guest_network", "mode"),
                "bridged L2 networks are built for Windows L1s only so far; a debian-12 L1 "
                "offers nat or internal",
            )
        if guest_net.mode is not GuestNetworkMode.bridged:
            for net_name in host.networks:
                attached = next((n for n in lab.networks if n.name == net_name), None)
                if attached is not None and attached.cidr.overlaps(guest_net.cidr):
                    yield (
                        ("hosts", i, "guest_network", "cidr"),
                        f"{guest_net.cidr} overlaps {attached.cidr} of L1 network "
                        f"{attached.name!r}, "
                        "which this host is attached to",
                    )
            # .1 is the L1's own address, guests are numbered from .10.
            capacity = guest_net.cidr.num_addresses - 2 - 9
            if len(host.guests) > capacity:
                yield (
                    ("hosts", i, "guest_network", "cidr"),
                    f"{guest_net.cidr} has room for {capacity} guests, the host has "
                    f"{len(host.guests)}",
                )

        for j, guest in enumerate(host.guests):
            if guest.name in all_guests or guest.name in {h.name for h in lab.hosts}:
                yield (
                    ("hosts", i, "guests", j, "name"),
                    f"{guest.name!r} is already used in this lab; L1 and L2 names must be unique",
                )
            all_guests[guest.name] = host.name
            if guest.cpus > (host.cpus or guest.cpus):
                yield (
                    ("hosts", i, "guests", j, "cpus"),
                    f"an L2 cannot have more vCPUs ({guest.cpus}) than its L1 ({host.cpus})",
                )

    for i, net in enumerate(lab.networks):
        hosts_on = [h for h in lab.hosts if net.name in h.networks]
        capacity = net.cidr.num_addresses - 2 - 9
        if len(hosts_on) > capacity:
            yield (
                ("networks", i, "cidr"),
                f"{net.cidr} has room for {capacity} hosts, {len(hosts_on)} are attached",
            )


def _unique(
    path: KeyPath, names: list[str], what: str, key: str | None = None
) -> Iterator[tuple[KeyPath, str]]:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            where = (*path, index, key) if key else (*path, index)
            yield (where, f"duplicate {what} name {name!r}")
        seen.add(name)
