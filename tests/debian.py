"""What Debian installs for the Makefile's DEBS, and which package owns a program, for tests.

The question asked is "does `make system-deps` (apt-get install --no-install-recommends
DEBS) on a fresh Debian 12 give us this package?". So the closure follows Depends and
Pre-Depends only, never Recommends or Suggests, and decides like apt does on a
machine that has only the Essential packages:

- ``a | b``: satisfied without installing anything when an alternative is Essential or
  already on the way in;
  otherwise apt installs the first alternative, and only that one is followed.
- a virtual package (``<v>`` in apt-cache's output) is followed only when exactly one
  package provides it; with several providers apt's pick is not certain, so none is
  counted (a program whose package only comes that way must be listed in DEBS).
- a real package that other packages also provide is followed as itself.
- Essential packages count as present: every Debian system has them.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

APT_DEPENDS_ARGV = ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
               "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"]
_DEPENDENCY = re.compile(r"^ (?P<more>[ |])(?:Depends|PreDepends): (?P<name>\S+)$")


@dataclass
class Alternative:
    name: str
    virtual: bool
    providers: list[str] = field(default_factory=list)


Graph = dict[str, list[list[Alternative]]]
"""package -> its Depends/Pre-Depends, each an or-group of alternatives."""


def makefile_debs(makefile: Path) -> list[str]:
    """The packages in the Makefile's ``DEBS :=`` (continuation lines joined)."""
    text = makefile.read_text().replace("\\\n", " ")
    match = re.search(r"^DEBS\s*:?=(.*)$", text, re.MULTILINE)
    assert match, f"{makefile} has no DEBS := line"
    names = match.group(1).split()
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9+.-]*", n) for n in names), names
    return names


def parse_apt_depends(text: str) -> Graph:
    """Read ``apt-cache depends --recurse`` output (a package may be listed twice)."""
    graph: Graph = {}
    groups: list[list[Alternative]] | None = None
    group: list[Alternative] = []
    last: Alternative | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            name = line.strip()
            groups = None if name in graph else graph.setdefault(name, [])
            last = None
            continue
        dependency = _DEPENDENCY.match(line)
        if dependency:
            raw = dependency["name"]
            last = Alternative(raw.strip("<>"), virtual=raw.startswith("<"))
            group.append(last)
            if dependency["more"] == " ":  # no "|": the or-group ends here
                if groups is not None:
                    groups.append(group)
                group = []
        elif line.startswith("    ") and last is not None:
            last.providers.append(line.strip())
        else:
            raise ValueError(f"unexpected apt-cache depends line: {line!r}")
    return graph


def closure(roots: list[str], graph: Graph, essential: set[str]) -> set[str]:
    """Every package apt installs for ``roots`` on a machine with only ``essential``."""
    have = set(essential)
    todo = [r for r in roots if r not in have]
    have.update(todo)
    while todo:
        for group in graph.get(todo.pop(), []):
            if any(_certain(alt) in have for alt in group):
                continue
            chosen = _certain(group[0])
            if chosen is not None and chosen not in have:
                have.add(chosen)
                todo.append(chosen)
    return have


def _certain(alt: Alternative) -> str | None:
    """The package apt certainly installs for one alternative (None: not certain)."""
    if not alt.virtual:
        return alt.name
    return alt.providers[0] if len(alt.providers) == 1 else None


def apt_graph(packages: list[str]) -> Graph:
    """The dependency graph of ``packages`` as this machine's apt sources have it."""
    result = subprocess.run([*APT_DEPENDS_ARGV, *packages], capture_output=True, text=True,
                            check=True, env={**os.environ, "LC_ALL": "C"})
    return parse_apt_depends(result.stdout)


def essential_packages() -> set[str]:
    result = subprocess.run(["dpkg-query", "-W", "-f", "${Essential} ${Package}\n"],
                            capture_output=True, text=True, check=True)
    return {line.split()[1] for line in result.stdout.splitlines() if line.startswith("yes ")}


@dataclass(frozen=True)
class Unmet:
    program: str
    package: str


def unmet(programs: dict[str, str], debs: list[str], graph: Graph,
          essential: set[str]) -> list[Unmet]:
    """Programs (name -> package) whose package ``apt-get install DEBS`` does not bring."""
    installed = closure(debs, graph, essential)
    return [Unmet(name, package) for name, package in programs.items()
            if package not in installed]


def owning_package(program_path: str) -> str | None:
    """The package ``dpkg -S`` names for a program, following what dpkg does not see.

    Tries the path as found, then each symlink hop (/usr/sbin/ip -> /bin/ip,
    /usr/sbin/iptables -> /etc/alternatives/iptables -> xtables-nft-multi), each
    also with and without /usr (merged-/usr systems; dpkg knows the old paths).
    The first owner wins, so /usr/bin/gcc is gcc's, not gcc-12's.
    """
    for path in _path_chain(program_path):
        for variant in _usr_variants(path):
            result = subprocess.run(["dpkg", "-S", variant], capture_output=True, text=True,
                                    check=False, env={**os.environ, "LC_ALL": "C"})
            for line in result.stdout.splitlines():
                owners, _, owned = line.partition(": ")
                if owned == variant and not owners.startswith("diversion by"):
                    return owners.split(", ")[0].split(":")[0]  # drop ":amd64"
    return None


def _path_chain(path: str) -> list[str]:
    chain = [path]
    current = path
    for _ in range(10):
        if not os.path.islink(current):
            break
        current = os.path.normpath(os.path.join(os.path.dirname(current),
                                                os.readlink(current)))
        chain.append(current)
    real = os.path.realpath(path)
    return chain if real in chain else [*chain, real]


def _usr_variants(path: str) -> list[str]:
    if path.startswith("/usr/"):
        return [path, path.removeprefix("/usr")]
    if path.startswith(("/bin/", "/sbin/", "/lib/")):
        return [path, "/usr" + path]
    return [path]
