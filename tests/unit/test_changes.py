"""What `up` applies of a changed lab file (guests' sizes, by restarting them) and what it
refuses (everything else), decided from two plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.commands.changes import LabChanged, changes_to_apply
from nestlab.drivers import driver_class
from nestlab.host.check import HostDecision
from nestlab.lab.model import Lab
from nestlab.plan import Plan, make_plan
from tests.conftest import example

DECISION = HostDecision(accel="kvm", vendor="intel", evmcs=True)


def plan_of(lab: Lab) -> Plan:
    return make_plan(lab, DECISION, Path("/var/lib/nestlab/labs") / lab.name, "key")


def resized(lab: Lab, host_memory: int | None = None, guest_memory: int | None = None) -> Lab:
    host = lab.hosts[0]
    guests = host.guests
    if guest_memory is not None:
        guests = (guests[0].model_copy(update={"memory": guest_memory}), *guests[1:])
    host = host.model_copy(update={"guests": guests,
                                   "memory": host_memory or host.memory})
    return lab.model_copy(update={"hosts": (host,)})


def apply(saved: Lab, new: Lab):  # type: ignore[no-untyped-def]
    return changes_to_apply(plan_of(saved), plan_of(new), Path("lab.yaml"),
                            lambda host: driver_class(host).redefines_guests)


def test_the_same_lab_changes_nothing() -> None:
    lab = example("linux-nested")
    assert apply(lab, lab).guests == frozenset()


def test_sizes_restart_their_guests_and_say_so() -> None:
    lab = example("linux-nested")
    restarts = apply(lab, resized(lab, host_memory=4 * 1024**3, guest_memory=384 * 1024**2))
    assert restarts.guests == {"kvm1", "prime1"}
    assert set(restarts.reasons) == {"kvm1: memory 3GiB -> 4GiB (restarts kvm1 and its L2s)",
                                     "prime1: memory 256MiB -> 384MiB (restarts prime1)"}


def test_a_hyperv_l2s_size_is_refused_its_l1s_applied() -> None:
    lab = example("windows-hyperv")
    assert apply(lab, resized(lab, host_memory=12 * 1024**3)).guests == {"hv1"}
    with pytest.raises(LabChanged, match=r"up cannot apply:\n  hosts\[0\]\.guests\[0\]\.memory"):
        apply(lab, resized(lab, guest_memory=1024**3))


def test_a_renamed_guest_is_refused() -> None:
    lab = example("linux-nested")
    host = lab.hosts[0]
    renamed = lab.model_copy(update={"hosts": (host.model_copy(update={"guests": (
        host.guests[0].model_copy(update={"name": "prime9"}),)}),)})
    with pytest.raises(LabChanged, match="prime9"):
        apply(lab, renamed)
