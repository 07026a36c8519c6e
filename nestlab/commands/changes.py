"""What `up` may change in a lab that is up, and how: an L1's or an L2's size (memory,
vCPUs) is applied by redefining that guest and restarting it, said before it is done;
any other difference between the lab file and the lab's plan is refused with the list
of what would change, never mixed in silently."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nestlab.errors import NestlabError
from nestlab.lab.model import format_size
from nestlab.plan import HostPlan, Plan, plan_changes

_L1_SIZE = re.compile(r"hosts\[(\d+)\]\.(memory|cpus)$")
_L2_SIZE = re.compile(r"hosts\[(\d+)\]\.guests\[(\d+)\]\.(memory|cpus)$")


class LabChanged(NestlabError):
    """The lab file says something about the lab that `up` cannot apply."""


@dataclass(frozen=True)
class Restarts:
    """Guests whose definition changes in this `up`, and why, in the user's words."""

    guests: frozenset[str]
    reasons: tuple[str, ...]


def changes_to_apply(saved: Plan, plan: Plan, lab_file: Path,
                     redefines_l2s: Callable[[HostPlan], bool]) -> Restarts:
    """The restarts that bring the lab to the new plan; ``LabChanged`` for anything else.

    ``redefines_l2s`` says whether an L1's driver can change its L2s' sizes.
    """
    changes = plan_changes(saved, plan)
    guests: set[str] = set()
    reasons: list[str] = []
    refused: list[str] = []
    for change in changes:
        path, _, values = change.partition(": ")
        before, _, after = values.partition(" -> ")
        if (match := _L1_SIZE.match(path)) and _same_names(saved, plan):
            host = plan.hosts[int(match[1])]
            guests.add(host.name)
            reasons.append(f"{host.name}: {_shown(match[2], before, after)} (restarts "
                           f"{host.name}" + (" and its L2s)" if host.guests else ")"))
        elif (match := _L2_SIZE.match(path)) and _same_names(saved, plan) and \
                redefines_l2s(plan.hosts[int(match[1])]):
            guest = plan.hosts[int(match[1])].guests[int(match[2])]
            guests.add(guest.name)
            reasons.append(f"{guest.name}: {_shown(match[3], before, after)} (restarts "
                           f"{guest.name})")
        else:
            refused.append(change)
    if refused:
        shown = refused[:20] + ([f"... and {len(refused) - 20} more"] if len(refused) > 20
                                else [])
        raise LabChanged(
            f"lab {plan.lab} is up from another version of {lab_file}; up cannot apply:\n  "
            + "\n  ".join(shown),
            hint="up applies changes of memory and vCPUs of guests that stay; for anything "
                 f"else restore the lab file, or take the lab down (`nestlab down --lab "
                 f"{plan.lab}`) and bring it up again from this one.")
    return Restarts(frozenset(guests), tuple(reasons))


def _same_names(saved: Plan, plan: Plan) -> bool:
    """Sizes are compared guest by guest only when the guests are the same ones."""
    def names(p: Plan) -> list[tuple[str, tuple[str, ...]]]:
        return [(h.name, tuple(g.name for g in h.guests)) for h in p.hosts]

    return names(saved) == names(plan)


def _shown(key: str, before: str, after: str) -> str:
    if key == "memory":
        return f"memory {format_size(int(before))} -> {format_size(int(after))}"
    return f"{key} {before} -> {after}"
