"""Read a lab file into a validated ``model.Lab``, or say exactly what is wrong.

Every problem is reported with the file, the key path and, where YAML gives
it, the line; all problems are collected before anything is raised.

nestlab runs as root on whatever file it is given, so reading is bounded: the
file must be a regular file of at most ``LAB_FILE_LIMIT`` bytes, YAML nesting
at most ``MAX_DEPTH`` levels, and the document at most ``MAX_NODES`` values
once every alias is expanded (so a few hundred bytes of nested aliases, the
"billion laughs", are refused while they are composed, before anything grows).
Aliases themselves stay allowed (``<<: *defaults`` is useful); an alias
inside the value it names (a recursive structure) is refused. Any error a
YAML constructor raises (a bad ``!!timestamp``, an unknown tag, a merge of a
scalar) is one problem with its line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError
from yaml.constructor import ConstructorError

from nestlab.errors import LabFileError, Problem, brief_repr
from nestlab.files import KiB, read_bounded_text
from nestlab.lab.model import (
    GuestNetworkMode,
    Lab,
    format_size,
)
from nestlab.lab.seats import seat_problems

LAB_FILE_LIMIT = 256 * KiB
"""A large lab file is a few KiB; a limit makes /dev/zero or a log file a quick refusal."""
MAX_DEPTH = 32
"""A lab file nests 6 levels (lab, hosts, host, guests, guest, value)."""
MAX_NODES = 10_000
"""Values in the document with aliases expanded: 64 L1s with 10 L2s each are ~6,000;
PyYAML composes about 20,000 a second, so this also bounds the time a file takes."""
MAX_EXPANDED_CHARS = 4 * LAB_FILE_LIMIT
"""Characters of scalar text with aliases expanded: 2,000 aliases of one 200 KB string
would otherwise make every later check read 400 MB."""
MAX_INT_CHARS = 32
"""Longer integers are no lab's numbers; Python refuses to parse beyond 4300 digits."""

KeyPath = tuple[str | int, ...]


def load_lab(path: str | Path) -> Lab:
    """Parse and validate a lab file; raise ``LabFileError`` listing every problem.

    A path that is not a readable regular UTF-8 file of at most
    ``LAB_FILE_LIMIT`` bytes raises ``files.FileProblem`` (exit 2 as well).
    """
    return parse_lab(read_bounded_text(path, LAB_FILE_LIMIT, "lab file"), str(path))


def parse_lab(text: str, filename: str = "<lab>") -> Lab:
    """Validate lab-file text; ``filename`` is only used in messages."""
    if len(text) > LAB_FILE_LIMIT:
        raise LabFileError(filename, [Problem(
            "", f"the text is {len(text)} characters; a lab file has at most {LAB_FILE_LIMIT}")])
    data, lines = _read_yaml(text, filename)
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


def _read_yaml(text: str, filename: str) -> tuple[Any, dict[KeyPath, int]]:
    """The document's data and the line of every key path, within the module's bounds."""
    try:
        return _compose_and_construct(text, filename)
    except yaml.YAMLError as exc:
        raise LabFileError(filename, [_yaml_problem(exc, text)]) from None


def _compose_and_construct(text: str, filename: str) -> tuple[Any, dict[KeyPath, int]]:
    loader = _LabLoader(text)  # the reader refuses control characters here already
    try:
        root = loader.get_single_node()
        if root is None:
            raise LabFileError(filename, [Problem("", "the file is empty; expected a mapping")])
        lines: dict[KeyPath, int] = {}
        problems = list(_index_lines(root, (), lines))
        if problems:
            raise LabFileError(filename, problems)
        return loader.construct_checked(root), lines
    finally:
        loader.dispose()


class _Refused(yaml.MarkedYAMLError):
    """A problem worded here: a bound exceeded, a value a constructor could not build."""


class _Extent(NamedTuple):
    """What a node expands to: values, nesting levels, characters of scalar text."""

    nodes: int
    depth: int
    chars: int


class _LabLoader(yaml.SafeLoader):
    """``SafeLoader`` that measures while it composes and refuses past the bounds.

    The document's size with aliases expanded is counted as it is composed:
    each new node counts one (and its text), each alias everything it names
    (known, because an alias can only name a complete node). So nothing is
    ever expanded, and a file is refused as soon as a count passes its bound,
    before the scanner has read the rest of it.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._open_depth = 0
        self._nodes = 0
        self._chars = 0
        self._extent: dict[int, _Extent] = {}  # id() of each complete node
        self._constructing: yaml.Node | None = None

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            extent = self._extent.get(id(node))
            if extent is None:  # named by an anchor whose node is still open
                raise _Refused(
                    problem=f"alias *{event.anchor} is used inside the value it names; "
                    "a recursive structure cannot be a lab", problem_mark=mark)
            self._add(extent, mark)
            return node
        self._open_depth += 1
        if self._open_depth > MAX_DEPTH:
            raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep",
                           problem_mark=mark)
        node = super().compose_node(parent, index)
        self._open_depth -= 1
        if node is not None:
            extent = self._extent[id(node)] = self._measure(node)
            self._add(_Extent(1, 1, extent.chars if isinstance(node, yaml.ScalarNode) else 0),
                      mark)
        return node

    def _add(self, extent: _Extent, mark: Any) -> None:
        """Count a new node, or all that an alias names, and refuse past the bounds."""
        self._nodes += extent.nodes
        self._chars += extent.chars
        counted = "an alias counts as everything it names, each time it is used"
        if self._nodes > MAX_NODES:
            raise _Refused(
                problem=f"the document has more than {MAX_NODES} values ({counted}); "
                "a lab file needs far fewer", problem_mark=mark)
        if self._chars > MAX_EXPANDED_CHARS:
            raise _Refused(
                problem=f"the document's values add up to more than {MAX_EXPANDED_CHARS} "
                f"characters ({counted})", problem_mark=mark)

    def _measure(self, node: yaml.Node) -> _Extent:
        """Values and depth of ``node`` with aliases expanded, from its children's."""
        if isinstance(node, yaml.ScalarNode):
            return _Extent(1, 1, len(node.value))
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        extents = [self._extent[id(child)] for child in children]
        extent = _Extent(1 + sum(e.nodes for e in extents),
                         1 + max((e.depth for e in extents), default=0),
                         sum(e.chars for e in extents))
        if extent.depth > MAX_DEPTH:
            raise _Refused(
                problem=f"nested more than {MAX_DEPTH} levels deep once aliases are expanded",
                problem_mark=node.start_mark)
        return extent

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        self._constructing = node
        return super().construct_object(node, deep)

    def construct_bounded_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value) > MAX_INT_CHARS:
            raise _Refused(problem=f"an integer of {len(node.value)} characters is too large",
                           problem_mark=node.start_mark)
        return int(super().construct_yaml_int(node))

    def construct_checked(self, root: yaml.Node) -> Any:
        """The document's data; what a constructor raises becomes one ``_Refused``
        at the node it was building (``!!bool x`` raises KeyError, ``!!timestamp
        2020-99-99`` ValueError)."""
        try:
            return self.construct_document(root)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            node = self._constructing or root
            what = brief_repr(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            tag = _short_tag(node.tag)
            reason = "" if isinstance(exc, KeyError) else f": {exc}"
            raise _Refused(problem=f"cannot read {what} as {tag}{reason}",
                           problem_mark=node.start_mark) from None


_LabLoader.add_constructor("tag:yaml.org,2002:int", _LabLoader.construct_bounded_int)


_NAME_KEY_TAGS = {"tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"}


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def _yaml_problem(exc: yaml.YAMLError, text: str) -> Problem:
    """One located problem for anything the YAML reader, parser or constructor raised."""
    if isinstance(exc, yaml.reader.ReaderError):
        at = text.count("\n", 0, exc.position or 0) + 1
        return Problem("", f"not valid YAML: {str(exc).splitlines()[0]}", at)
    if not isinstance(exc, yaml.MarkedYAMLError):
        return Problem("", f"not valid YAML: {exc}")
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    reason = exc.problem or exc.context or type(exc).__name__
    if isinstance(exc, _Refused):
        return Problem("", reason, line)
    if isinstance(exc, ConstructorError):
        return Problem("", f"cannot read this value: {reason}", line)
    return Problem("", f"not valid YAML: {reason}", line)


def _index_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> Iterator[Problem]:
    """Record the line of every key path; yield duplicate keys, which YAML would hide,
    and keys that are lists or mappings, which no lab file has."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                yield Problem(format_path(path), "a key must be a name, not a list or mapping",
                              line)
                continue
            key = key_node.value
            if key_node.tag not in _NAME_KEY_TAGS:  # `1:`, `null:`, `2001-01-01:`
                yield Problem(format_path((*path, key)), "a key must be a name; YAML reads "
                              f"this one as {_short_tag(key_node.tag)}", line)
                continue
            if key in seen:
                yield Problem(format_path((*path, key)), "duplicate key", line)
            seen.add(key)
            yield from _index_lines(value_node, (*path, key), lines)
            lines[(*path, key)] = line
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
        path = _key_path(error["loc"], keep_last=error["type"] == "extra_forbidden")
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] == "too_long":
            ctx = error.get("ctx", {})
            message = (f"at most {ctx.get('max_length')} entries, more than one L0 host runs; "
                       f"got {ctx.get('actual_length')}")
        # The lab file's plain strings are all names (model.Name); the others have
        # validators of their own that say what they expect.
        elif error["type"] in ("string_pattern_mismatch", "string_type", "string_too_short"):
            message = (
                f"{brief_repr(error['input'])} is not a valid name: use lower-case letters, "
                "digits and '-', starting with a letter and not ending with '-'"
            )
        elif error["type"] == "string_too_long":
            message = (f"{brief_repr(error['input'])} is not a valid name: at most "
                       f"{error.get('ctx', {}).get('max_length')} characters")
        problems.append(_locate(path, message, lines))
    return problems


def _key_path(loc: tuple[str | int, ...], keep_last: bool) -> KeyPath:
    """pydantic's error location without its internal markers (``function-after[...]``);
    ``keep_last`` keeps an unknown key, which is the file's own text, whatever it is."""
    return tuple(part for i, part in enumerate(loc)
                 if isinstance(part, int) or "[" not in part or (keep_last and i == len(loc) - 1))


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
    yield from _unique(("nodes",), [n.name for n in lab.nodes], "node", "name")
    yield from _unique(("nodes",), [n.uri for n in lab.nodes], "node", "uri")

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

        profile = host.os.profile
        if len(host.name) > profile.max_name_length:
            yield (
                ("hosts", i, "name"),
                f"{host.name!r} is too long: {profile.name_rule}",
            )
        if host.memory < profile.min_memory:
            yield (
                ("hosts", i, "memory"),
                f"{profile.title} needs at least "
                f"{format_size(profile.min_memory)}, got {format_size(host.memory)}",
            )

        reserved = profile.reserved_memory
        wanted = sum(g.memory for g in host.guests)
        if host.guests and wanted + reserved > host.memory:
            yield (
                ("hosts", i, "memory"),
                f"its L2 guests need {format_size(wanted)} and the L1 keeps "
                f"{format_size(reserved)} for itself, but it has {format_size(host.memory)}",
            )

        guest_net = host.guest_network
        guest_cidr = lab.guest_cidr(i)
        if guest_net.mode.value not in profile.guest_network_modes:
            yield (
                ("hosts", i, "guest_network", "mode"),
                f"{guest_net.mode.value} L2 networks are not built for {profile.title} yet; it "
                f"offers {' or '.join(profile.guest_network_modes)}",
            )
        if guest_net.mode is not GuestNetworkMode.bridged:
            for net_name in host.networks:
                attached = next((n for n in lab.networks if n.name == net_name), None)
                if attached is not None and attached.cidr.overlaps(guest_cidr):
                    yield (
                        ("hosts", i, "guest_network", "cidr"),
                        f"{guest_cidr} overlaps {attached.cidr} of L1 network "
                        f"{attached.name!r}, "
                        "which this host is attached to",
                    )
            # .1 is the L1's own address, guests are numbered from .10.
            capacity = guest_cidr.num_addresses - 2 - 9
            if len(host.guests) > capacity:
                yield (
                    ("hosts", i, "guest_network", "cidr"),
                    f"{guest_cidr} has room for {capacity} guests, the host has "
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

    yield from _routed_checks(lab)
    if lab.seats is not None:
        yield from seat_problems(lab, lab.seats)

    for i, net in enumerate(lab.networks):
        hosts_on = [h for h in lab.hosts if net.name in h.networks]
        capacity = net.cidr.num_addresses - 2 - 9
        if len(hosts_on) > capacity:
            yield (
                ("networks", i, "cidr"),
                f"{net.cidr} has room for {capacity} hosts, {len(hosts_on)} are attached",
            )


def _routed_checks(lab: Lab) -> Iterator[tuple[KeyPath, str]]:
    """Routed L2 networks reach each other through their L1s: their subnets must differ
    and each pair of such L1s must share an L0 network to route over."""
    routed = [i for i, h in enumerate(lab.hosts)
              if h.guest_network.mode is GuestNetworkMode.routed]
    for position, i in enumerate(routed):
        for j in routed[:position]:
            here, there = lab.hosts[i], lab.hosts[j]
            if lab.guest_cidr(i).overlaps(lab.guest_cidr(j)):
                yield (("hosts", i, "guest_network", "cidr"),
                       f"{lab.guest_cidr(i)} overlaps {lab.guest_cidr(j)}, the routed L2 "
                       f"network of {there.name!r}")
            if not set(here.networks) & set(there.networks):
                yield (("hosts", i, "networks"),
                       f"{here.name!r} and {there.name!r} have routed L2 networks but share "
                       "no L1 network to route between them")


def _unique(
    path: KeyPath, names: list[str], what: str, key: str | None = None
) -> Iterator[tuple[KeyPath, str]]:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            where = (*path, index, key) if key else (*path, index)
            yield (where, f"duplicate {what} {key or 'name'} {name!r}")
        seen.add(name)
