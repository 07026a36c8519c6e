"""pytest plugin: tests against a nested lab (registered as ``nestlab`` through the
``pytest11`` entry point, so installing nestlab is enough).

    pytest --nestlab nestlab.yaml [--nestlab-sandbox] [--nestlab-reuse] [--nestlab-keep]

The session fixture ``nestlab_lab`` brings the lab up (or attaches to it with
``--nestlab-reuse``) and takes it down after the run unless told not to, also
when tests fail or the run is interrupted. A test that takes ``l1_host`` runs
once per L1, one that takes ``l2_host`` once per L2 (ids ``kvm1``,
``prime1@kvm1``); both are testinfra hosts over the lab's pinned sessions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nestlab.errors import NestlabError


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nestlab", "nestlab: tests against a nested-virtualization lab")
    group.addoption("--nestlab", metavar="FILE", default=None,
                    help="Lab file: the run brings this lab up and takes it down after.")
    group.addoption("--nestlab-sandbox", action="store_true",
                    help="Bring the lab up in nestlab's sandbox (its own libvirtd in a network "
                         "namespace; root).")
    group.addoption("--nestlab-reuse", action="store_true",
                    help="Attach to the lab that is already up; never take it down.")
    group.addoption("--nestlab-keep", action="store_true",
                    help="Leave the lab up after the run.")
    group.addoption("--nestlab-seat", metavar="N", type=int, default=None,
                    help="Seat N of a lab with seats (the lab <lab>-sNN).")


def _lab_file(config: pytest.Config, wanted_by: str) -> Path:
    value = config.getoption("--nestlab")
    if not value:
        raise pytest.UsageError(f"{wanted_by} needs a lab: pass --nestlab FILE")
    return Path(value)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per L1 for ``l1``/``l1_host``, one per L2 for ``l2``/``l2_host``, named after
    them (``kvm1``, ``prime1@kvm1``)."""
    from nestlab.lab.labfile import load_lab
    from nestlab.testing import guests_of

    for fixture, l2 in (("l1", False), ("l2", True)):
        if fixture not in metafunc.fixturenames:
            continue
        lab_file = _lab_file(metafunc.config, f"{metafunc.function.__name__} (one test per "
                                              f"{fixture.upper()})")
        try:
            guests = [g for g in guests_of(load_lab(lab_file)) if g.is_l2 == l2]
        except NestlabError as exc:
            raise pytest.UsageError(f"--nestlab {lab_file}: {exc.message}") from None
        metafunc.parametrize(fixture, guests, ids=[g.test_id for g in guests], indirect=True,
                             scope="session")


@pytest.fixture(scope="session")
def nestlab_lab(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The lab for this run (a ``nestlab.testing.LabHandle``)."""
    from nestlab.testing import LabSession

    config = request.config
    try:
        session = LabSession(_lab_file(config, "the nestlab_lab fixture"),
                             sandbox=config.getoption("--nestlab-sandbox"),
                             reuse=config.getoption("--nestlab-reuse"),
                             keep=config.getoption("--nestlab-keep"),
                             seat=config.getoption("--nestlab-seat"))
    except NestlabError as exc:
        raise pytest.UsageError(f"--nestlab: {exc.message}") from None
    try:
        try:
            handle = session.start()
        except NestlabError as exc:
            pytest.fail(f"nestlab: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""),
                        pytrace=False)
        yield handle
    finally:
        session.stop()  # also when `up` failed half-way or the run was interrupted


@pytest.fixture(scope="session")
def l1(request: pytest.FixtureRequest) -> Any:
    """One L1 of the lab (a ``nestlab.testing.GuestName``): the test runs once per L1."""
    return request.param


@pytest.fixture(scope="session")
def l2(request: pytest.FixtureRequest) -> Any:
    """One L2 of the lab (a ``nestlab.testing.GuestName``): the test runs once per L2."""
    return request.param


@pytest.fixture(scope="session")
def l1_host(l1: Any, nestlab_lab: Any) -> Any:
    """A testinfra host for one L1 (the test runs once per L1)."""
    return nestlab_lab.host(l1.name)


@pytest.fixture(scope="session")
def l2_host(l2: Any, nestlab_lab: Any) -> Any:
    """A testinfra host for one L2, reached through its L1 (the test runs once per L2)."""
    if l2.family == "windows":
        pytest.skip(f"{l2.name} runs under Hyper-V in {l2.l1}: nestlab runs no commands in "
                    "it (its proof is Hyper-V's state and heartbeat)")
    return nestlab_lab.host(l2.name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A guest whose host key changed stops the whole run: every later test would talk to
    a machine that is not the one the lab pinned."""
    yield
    from nestlab.state.keys import HostKeyChanged

    if call.excinfo is not None and call.excinfo.errisinstance(HostKeyChanged):
        exc = call.excinfo.value
        item.session.shouldfail = f"nestlab: {exc}"
