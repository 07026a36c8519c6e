"""A lab with seats: `up` of every seat in parallel within the host's budget, `status`
one row per seat, `down` of every seat. Each seat is its own lab, taken through the
ordinary per-lab commands (``up.up``, ``status``, ``down.down``); one seat failing
never stops the others, and each seat's own `up` resumes where it stopped.
"""

from __future__ import annotations

import ipaddress
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal, TypeVar

from nestlab.build.images import ConcurrentBuilds
from nestlab.commands.context import LabContext
from nestlab.commands.down import DownResult, down
from nestlab.commands.nodes import node_refusal
from nestlab.commands.status import lab_status
from nestlab.commands.up import FactsReader, Proof, up
from nestlab.errors import InputError, NestlabError
from nestlab.host.check import check_host, seats_at_once
from nestlab.host.facts import HostFacts
from nestlab.lab.model import Lab, Node
from nestlab.lab.seats import seat_labs
from nestlab.plan import network_name
from nestlab.progress import ProgressLines, Reporter
from nestlab.state.paths import lab_dir
from nestlab.state.record import NoSuchLab, last_run, read_events, record_path
from nestlab.state.seen import LabStatus, cached_status
from nestlab.virt.connection import connect

Result = TypeVar("Result")


class SeatLines(ProgressLines):
    """One seat's progress among the others': each line names the seat's lab."""

    def __init__(self, lines: ProgressLines, seat_lab: str) -> None:
        super().__init__(lines.style, lines.stream)
        self.started = lines.started
        self._lines = lines
        self._seat_lab = seat_lab

    def say(self, guest: str, message: str) -> None:
        self._lines.say(f"{self._seat_lab} {guest}", message)


@dataclass
class SeatUp:
    """How one seat's `up` ended."""

    seat: int
    lab: str
    outcome: Literal["up", "failed", "not started"] = "not started"
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    hint: str | None = None
    proofs: list[Proof] = field(default_factory=list)


def up_seats(lab: Lab, lab_file: Path, seats: int | None, uri: str, want_sandbox: bool,
             read_facts: FactsReader, lines: ProgressLines,
             baseline: bool = False, nodes: tuple[Node, ...] = ()) -> tuple[list[SeatUp], int]:
    """Bring up every seat (``seats`` overrides the lab file's), a few at a time, each
    keeping its baseline once proven when ``baseline`` (``up --baseline``):
    (each seat's outcome, how many ran at once). With ``nodes``, each seat runs on the
    node it is placed on (``commands.nodes``), else all at ``uri``. The host check of
    each host counts every seat there that is not up yet; on a host's libvirt (no
    sandbox) a seat network that overlaps a network already there is refused before
    anything starts."""
    labs = seat_labs(lab, seats, str(lab_file))
    hosts = _hosts_of(labs, uri, nodes)
    for host_uri, node, _here in hosts:
        refusal = node_refusal(lab, host_uri, node)
        if refusal is not None:
            raise refusal  # as `up` of a lab without seats, and before any image is built
    at_once, facts_of, failed = 0, {}, {}
    for host_uri, node, here in hosts:
        try:
            facts_of[host_uri], most = _prepare_host(lab, host_uri, here, want_sandbox,
                                                     read_facts)
            at_once += most
        except NestlabError as exc:
            if node is None:
                raise  # the one host: no seat can come up
            failed[host_uri] = NestlabError(f"node {node}: {exc.message}", exc.hint)
    build_images(lab, lines)
    # One event per seat: a seat whose L1 fails cancels its own lab's waits, never
    # another seat's; Ctrl-C sets them all.
    cancels = {seat.name: threading.Event() for seat in labs}
    numbers = {seat.name: number for number, seat in enumerate(labs, start=1)}
    jobs = {seat.name: _seat_up_job(numbers[seat.name], seat, lab_file, host_uri,
                                    want_sandbox, facts_of[host_uri], lines,
                                    cancels[seat.name], baseline, node)
            if host_uri not in failed else
            partial(_refused, SeatUp(numbers[seat.name], seat.name), failed[host_uri])
            for host_uri, node, here in hosts for seat in here}
    return run_seats([jobs[seat.name] for seat in labs], max(at_once, 1),
                     on_interrupt=partial(_set_all, list(cancels.values()))), at_once


def _hosts_of(labs: list[Lab], uri: str,
              nodes: tuple[Node, ...]) -> list[tuple[str, str | None, list[Lab]]]:
    """(URI, node, its seats) of each host the seats run on: the node each is placed on,
    or all at ``uri`` without nodes."""
    if not nodes:
        return [(uri, None, labs)]
    from nestlab.commands.nodes import placement

    placed = placement(labs, nodes)
    return [(node.uri, node.name, [s for s in labs if placed[s.name] == node])
            for node in nodes if node in placed.values()]


def _prepare_host(lab: Lab, uri: str, here: list[Lab], want_sandbox: bool,
                  read_facts: FactsReader) -> tuple[HostFacts, int]:
    """A host's facts, read once for its seats, and how many of them come up at once; its
    check counts its seats that are not up yet (``HostCannotRunLab`` when it cannot run
    them), and a seat network that clashes with one already there is refused."""
    facts = read_facts(uri)
    pending = [s for s in here if not was_up(lab_dir(s.name))]
    counted = lab.model_copy(update={"seats": max(len(pending), 1)})
    decision = check_host(facts, counted, "sandbox" if want_sandbox else "host").decide(lab.name)
    if not want_sandbox:
        refuse_network_clashes(uri, here)
    return facts, seats_at_once(facts, counted, decision.accel, len(pending) or 1)


def _refused(outcome: SeatUp, exc: NestlabError) -> SeatUp:
    """A seat whose node could not be prepared (it does not answer, or cannot run it):
    failed, as the others come up."""
    outcome.outcome, outcome.error, outcome.hint = "failed", exc.message, exc.hint
    return outcome


def _set_all(events: list[threading.Event]) -> None:
    for event in events:
        event.set()


def build_images(lab: Lab, lines: ProgressLines) -> None:
    """The lab's images, built (once) before any seat starts: seats that each built a
    missing image at the same time would race to put it in the cache."""
    names = sorted({h.base_image for h in lab.hosts} | {
        g.image for h in lab.hosts for g in h.guests})
    builds = ConcurrentBuilds(names, partial(_say_image, lines))
    for name in names:
        builds.result(name)


def _say_image(lines: ProgressLines, name: str, step: str) -> None:
    lines.say("L0", f"image {name}: {step}")


def _seat_up_job(number: int, seat: Lab, lab_file: Path, uri: str, want_sandbox: bool,
                 facts: HostFacts, lines: ProgressLines, cancel: threading.Event,
                 baseline: bool = False, node: str | None = None) -> Callable[[], SeatUp]:
    def bring_up() -> SeatUp:
        result = SeatUp(number, seat.name)
        directory = lab_dir(seat.name)
        reporter = Reporter(seat.name, directory, "up", lines=SeatLines(lines, seat.name))
        started = time.monotonic()
        try:
            result.proofs = up(seat, lab_file, directory, uri, want_sandbox,
                               lambda _uri: facts, reporter, cancel, node)
            if baseline:
                from nestlab.commands.reset import make_baseline

                made = make_baseline(directory, reporter)
                result.proofs = made.proofs or result.proofs
            result.outcome = "up"
        except NestlabError as exc:
            result.outcome, result.error, result.hint = "failed", exc.message, exc.hint
        except Exception as exc:  # a bug in one seat's `up`: the others go on, it is reported
            result.outcome, result.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
            result.hint = ("This is a bug in nestlab; please report it with the seat's "
                           f"events.jsonl ({directory}), which names the step.")
        result.seconds = round(time.monotonic() - started, 1)
        result.counts = reporter.counts()
        return result
    return bring_up


def run_seats(jobs: list[Callable[[], Result]], at_once: int,
              on_interrupt: Callable[[], None] | None = None) -> list[Result]:
    """Run the jobs, ``at_once`` at a time, in order of the list; their results in that
    order. On Ctrl-C no job is started any more and ``on_interrupt`` is called (it stops
    the waits of the seats' `up`s); it ends once they have stopped (`up` again continues
    each). The workers are daemon threads, so a second Ctrl-C ends the command."""
    results: dict[int, Result] = {}
    todo = list(enumerate(jobs))
    lock, stop = threading.Lock(), threading.Event()

    def work() -> None:
        while not stop.is_set():
            with lock:
                if not todo:
                    return
                index, job = todo.pop(0)
            results[index] = job()

    workers = [threading.Thread(target=work, name=f"seat-{n}", daemon=True)
               for n in range(max(1, min(at_once, len(jobs))))]
    try:
        for worker in workers:
            worker.start()
        _join(workers)
    except BaseException:
        stop.set()
        if on_interrupt is not None:
            on_interrupt()
        _join(workers)
        raise
    return [results[i] for i in range(len(jobs))]


def _join(workers: list[threading.Thread]) -> None:
    for worker in workers:
        while worker.is_alive():
            worker.join(0.2)  # a join with a timeout lets Ctrl-C through


def was_up(directory: Path) -> bool:
    """Whether the seat has a record and its last `up` failed no step (its memory is
    already in use, so the host check does not count it again)."""
    if not record_path(directory).exists():
        return False
    try:
        run = last_run(read_events(directory), "up")
    except InputError:
        return False
    return bool(run) and not any(str(e.get("outcome", "")).startswith("failed") for e in run)


def refuse_network_clashes(uri: str, labs: list[Lab]) -> None:
    """``InputError`` when a seat's network overlaps a network the libvirt at ``uri``
    already has (other than that seat's own, from an earlier `up`)."""
    conn = connect(uri)
    try:
        existing = [(net.name(), net.XMLDesc(0)) for net in conn.listAllNetworks(0)]
    finally:
        conn.close()
    clashes = []
    for name, xml in existing:
        for cidr in network_cidrs(xml):
            for seat in labs:
                for net in seat.networks:
                    if network_name(seat.name, net.name) != name and net.cidr.overlaps(cidr):
                        clashes.append(f"{seat.name}'s network {net.name} ({net.cidr}) overlaps "
                                       f"{name} ({cidr})")
    if clashes:
        raise InputError("the seats' networks clash with networks already on this host: "
                         + "; ".join(clashes[:5]) + (" ..." if len(clashes) > 5 else ""),
                         hint="Move the lab's networks (cidr:) to a free range, use fewer "
                              "seats, or run the lab with --sandbox.")


def network_cidrs(xml: str) -> list[ipaddress.IPv4Network]:
    """The IPv4 subnets of a libvirt network's XML (``<ip address netmask|prefix>``)."""
    found = []
    for ip in ET.fromstring(xml).iter("ip"):  # noqa: S314 - libvirt's own XML
        address, mask = ip.get("address"), ip.get("netmask") or ip.get("prefix")
        if ip.get("family", "ipv4") != "ipv4" or not address or not mask:
            continue
        try:
            found.append(ipaddress.IPv4Network(f"{address}/{mask}", strict=False))
        except ValueError:
            continue
    return found


SeatState = Literal["up", "partly up", "not running", "down", "sandbox not running",
                    "damaged", "unknown"]


@dataclass(frozen=True)
class LastUp:
    """A seat's last `up`: when it ended, how long it took, whether a step failed."""

    end: float
    seconds: float
    outcome: Literal["ok", "failed"]


@dataclass(frozen=True)
class SeatStatus:
    """One row of `status` for a lab with seats."""

    seat: int
    lab: str
    state: SeatState
    last_up: LastUp | None
    l1s: tuple[int, int] = (0, 0)
    """(running, in the plan)."""
    l2s: tuple[int, int] = (0, 0)
    problem: str | None = None
    status: LabStatus | None = None
    node: str | None = None
    """The node the seat is placed on (None: the host at --connect)."""


def seats_status(folders: list[Path], cached: bool,
                 ask: Callable[[LabContext], LabStatus] = lab_status) -> list[SeatStatus]:
    """One row per seat: its state (asked now, all seats at once, or ``cached``) and its
    last `up`. A seat that was never brought up, or is down, is ``down``."""
    def one(folder: Path) -> SeatStatus:
        return _seat_status(folder, cached, ask)

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(folders))),
                            thread_name_prefix="seat-status") as pool:
        return list(pool.map(one, folders))


def _seat_status(folder: Path, cached: bool,
                 ask: Callable[[LabContext], LabStatus]) -> SeatStatus:
    seat, last = int(folder.name[-2:]), last_up(folder)
    if not record_path(folder).exists():
        return SeatStatus(seat, folder.name, "down", last)
    try:
        status = cached_status(folder) if cached else ask(LabContext.load(folder))
    except NoSuchLab:
        return SeatStatus(seat, folder.name, "down", last)
    except NestlabError as exc:
        return SeatStatus(seat, folder.name, "damaged", last,
                          problem=exc.message.splitlines()[0])
    hosts = status.seen.hosts
    l1s = (sum(h.state == "running" for h in hosts), len(hosts))
    guests = [g for h in hosts for g in h.guests]
    l2s = (sum(g.state == "running" for g in guests), len(guests))
    state: SeatState
    if status.seen.unanswered is not None:
        state = "unknown"  # its node does not answer: nothing is known of it
    elif status.seen.sandbox is not None and not status.seen.sandbox.running:
        state = "sandbox not running"
    elif l1s[0] == l1s[1] and l2s[0] == l2s[1]:
        state = "up"
    else:
        state = "partly up" if l1s[0] else "not running"
    return SeatStatus(seat, folder.name, state, last, l1s, l2s, status=status,
                      node=status.seen.node, problem=status.seen.unanswered)


def last_up(folder: Path) -> LastUp | None:
    """The seat's last `up`, from its event log (None: none since it was made)."""
    try:
        run = last_run(read_events(folder), "up")
    except (InputError, OSError):
        return None
    starts = [e["start"] for e in run if isinstance(e.get("start"), int | float)]
    ends = [e["end"] for e in run if isinstance(e.get("end"), int | float)]
    if not starts or not ends:
        return None
    failed = any(str(e.get("outcome", "")).startswith("failed") for e in run)
    return LastUp(max(ends), round(max(ends) - min(starts), 1), "failed" if failed else "ok")


@dataclass
class SeatDown:
    """How one seat's `down` ended: its result, or why it is not up, or its error."""

    seat: int
    lab: str
    result: DownResult | None = None
    note: str | None = None
    error: str | None = None


def down_seats(folders: list[Path], purge: bool, uri: str,
               lines: ProgressLines) -> list[SeatDown]:
    """Take every seat down, one after another; a seat that fails does not stop the
    rest, and a seat that is not up is noted, not an error."""
    outcomes = []
    for folder in folders:
        outcome = SeatDown(int(folder.name[-2:]), folder.name)
        if not folder.is_dir():
            outcome.note = "never brought up here"
        else:
            reporter = Reporter(folder.name, folder, "down",
                                lines=SeatLines(lines, folder.name))
            try:
                outcome.result = down(folder, purge, reporter, uri)
            except NoSuchLab:
                outcome.note = "not up (only its keys are kept; --purge removes them)"
            except NestlabError as exc:
                outcome.error = exc.message
        outcomes.append(outcome)
    return outcomes
