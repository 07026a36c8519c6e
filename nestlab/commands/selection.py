"""Which lab folders a command acts on: ``-f FILE`` or ``--lab NAME``, and ``--seat N``.

A seat is an ordinary lab (``course-s01``), so every per-lab command works on one
once given its folder. Without ``--seat``, a lab with seats means all of them:
the seats its lab file names, and any other seat of it with a folder here (seats
brought up with ``up --seats N``, or named by ``--lab`` alone); a lab without
seats is its own folder, exactly as before seats existed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nestlab.errors import InputError
from nestlab.lab import MAX_SEATS
from nestlab.plural import counted
from nestlab.state.paths import SEATED_NAME_MAX, check_lab_name, lab_dir, labs_root, seat_lab_name
from nestlab.state.record import is_lab_dir

if TYPE_CHECKING:
    from nestlab.lab.model import Lab

_SEAT = re.compile(r"-s(\d\d)")


@dataclass(frozen=True)
class Selection:
    """The lab a command was pointed at and the folders it acts on."""

    lab: str
    folders: list[Path]
    seated: bool
    """Every seat of a lab with seats (no --seat): one row, one outcome, per seat."""


def select_labs(lab_file: Path, lab_name: str | None, seat: int | None,
                root: Path | None = None) -> Selection:
    """The folders of the lab named by ``--lab`` (a name only, never a path) or ``-f``:
    one seat's with ``seat``, every seat's for a lab with seats, else the lab's own."""
    if lab_name is not None:
        name, seats = check_lab_name(lab_name), None
    else:
        from nestlab.lab.labfile import load_lab  # YAML and the model: not for --lab NAME

        lab = load_lab(lab_file)
        name, seats = lab.name, lab.seats
    if seat is not None:
        return Selection(name, [lab_dir(_seat_name(name, seats, seat), root)], seated=False)
    own = lab_dir(name, root)
    if seats is None and own.exists():
        return Selection(name, [own], seated=False)
    numbers = set(range(1, (seats or 0) + 1)) | set(seats_here(name, root))
    if not numbers:
        return Selection(name, [own], seated=False)
    return Selection(name, [lab_dir(seat_lab_name(name, k), root) for k in sorted(numbers)],
                     seated=True)


def one_lab_dir(lab_file: Path, lab_name: str | None, seat: int | None,
                root: Path | None = None) -> Path:
    """The one folder a command on a single lab acts on; a lab with several seats needs
    ``--seat N`` (exit 2, naming them). Reset, snapshots and handouts use this too."""
    selection = select_labs(lab_file, lab_name, seat, root)
    if len(selection.folders) > 1:
        raise InputError(f"lab {selection.lab} has {len(selection.folders)} seats "
                         f"({', '.join(f.name for f in selection.folders)}): this command "
                         "acts on one", hint="Say which with --seat N (1 is the first).")
    return selection.folders[0]


def labs_of_file(lab: Lab, seat: int | None, filename: str) -> list[Lab]:
    """What a command that reads the lab file (`plan`, `render`) acts on: seat ``seat``,
    or every seat of a lab with seats, or the lab itself."""
    from nestlab.lab.seats import seat_labs  # the model's, loaded with the lab file

    if seat is None:
        return seat_labs(lab, None, filename)
    if lab.seats is not None and seat > lab.seats:
        raise InputError(f"lab {lab.name} has {counted(lab.seats, 'seat')}; there is no seat "
                         f"{seat}",
                         hint=f"--seat 1 to --seat {lab.seats}.")
    return [seat_labs(lab, lab.seats or seat, filename)[seat - 1]]


def seats_here(lab: str, root: Path | None = None) -> list[int]:
    """The seats of ``lab`` that have a folder here (marked as that seat's lab)."""
    if len(lab) > SEATED_NAME_MAX:
        return []
    try:
        entries = list(labs_root(root).iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        rest = entry.name.removeprefix(lab)
        match = _SEAT.fullmatch(rest) if rest != entry.name else None
        if match and 1 <= int(match[1]) <= MAX_SEATS and entry.is_dir() and \
                is_lab_dir(entry, entry.name):
            found.append(int(match[1]))
    return sorted(found)


def _seat_name(lab: str, seats: int | None, seat: int) -> str:
    if seats is not None and seat > seats:
        raise InputError(f"lab {lab} has {counted(seats, 'seat')}; there is no seat {seat}",
                         hint=f"--seat 1 to --seat {seats}.")
    if len(lab) > SEATED_NAME_MAX:
        raise InputError(f"lab {lab} cannot have seats: its name has more than "
                         f"{SEATED_NAME_MAX} characters, leaving no room for '-s01'",
                         hint="Leave out --seat.")
    return seat_lab_name(lab, seat)
