"""What the CLI shows people: the host check, facts, status and phase timings.

Pure formatting of results the pipeline produced; JSON output is built here too
so that the table and the JSON say the same things.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nestlab.errors import escape_control_chars
from nestlab.plural import counted
from nestlab.state.record import iso_utc

if TYPE_CHECKING:
    from nestlab.commands.down import DownResult
    from nestlab.commands.labs import LabSummary
    from nestlab.commands.nodes import NodeCheck
    from nestlab.commands.plan import Preview
    from nestlab.commands.seats import SeatStatus, SeatUp
    from nestlab.commands.verify import VerifyResult
    from nestlab.host.check import HostReport
    from nestlab.host.facts import HostFacts
    from nestlab.lab.model import Lab
    from nestlab.state.seen import LabStatus


def check_json(report: HostReport, lab: Lab | None) -> dict[str, Any]:
    return {
        "lab": lab.name if lab else None,
        "accel": report.accel,
        "can_run": report.can_run,
        "vendor": report.vendor,
        "summary": report.summary,
        "stretch": report.stretch,
        "checks": [asdict(c) | {"status": c.status.value} for c in report.checks],
    }


def _shown(text: str, keep_newlines: bool = False) -> str:
    """Text for rich: a host's strings (CPU model, libvirt's errors) and the names in a
    lab can carry control characters or rich markup; neither reaches the terminal."""
    return escape(escape_control_chars(text, keep_newlines))


_MARK = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
"""By ``host.check.Status`` (a StrEnum, so its values are its keys): the model and the
host check stay unloaded for `status`."""


def nodes_check_json(checked: list[NodeCheck], lab: Lab) -> dict[str, Any]:
    """`nestlab check` of a lab with nodes: each node's verdict for one seat."""
    return {"lab": lab.name, "can_run": all(c.report is not None and c.report.can_run
                                            for c in checked),
            "nodes": [{"node": c.node.name, "uri": c.node.uri, "error": c.error,
                       **(check_json(c.report, lab) if c.report else {"can_run": False})}
                      for c in checked]}


def print_nodes_check(checked: list[NodeCheck], lab: Lab) -> None:
    """Each node's checks, then which node cannot take a seat and why."""
    console = Console()
    for c in checked:
        console.print(f"\n[bold]node {_shown(c.node.name)}[/] ({_shown(c.node.uri)}), "
                      "for one seat:")
        if c.report is None:
            console.print(f"[red]FAIL[/] cannot be asked: {_shown(c.error or '')}")
            continue
        print_check(c.report, lab, f"Node {c.node.name}")
    cannot = [c for c in checked if c.report is None or not c.report.can_run]
    console.print("\n" + (f"Every node can take a seat of lab {_shown(lab.name)}." if not cannot
                          else "Cannot take a seat: " + "; ".join(
                              f"{_shown(c.node.name)} ({_shown(_why_not(c))})"
                              for c in cannot)))


def _why_not(checked: NodeCheck) -> str:
    """Why a node cannot take a seat: why it could not be asked, or its failed checks."""
    if checked.report is None:
        return checked.error or ""
    return ", ".join(f.name for f in checked.report.failures)


def print_check(report: HostReport, lab: Lab | None, subject_host: str = "This host") -> None:
    console = Console()
    table = Table(show_header=False, box=None, pad_edge=False)
    for c in report.checks:
        table.add_row(_MARK[c.status], c.name, _shown(c.detail))
    console.print(table)
    for c in report.checks:
        if c.fix:
            console.print(f"\n[bold]{c.name}[/] fix:")
            console.print(_shown(c.fix, keep_newlines=True), highlight=False)
    verdict = "[green]can run[/]" if report.can_run else "[red]cannot run[/]"
    subject = f"lab {_shown(lab.name)}" if lab else "a lab"
    console.print(f"\naccel: [bold]{report.accel}[/]. {_shown(report.summary)}")
    console.print(f"{_shown(subject_host)} {verdict} {subject}.")


def down_summary(result: DownResult) -> str:
    """What `down` removed: ``removed 1 domain, 2 L2s inside it, 1 network``."""
    domains = len(result.removed_domains)
    return (f"removed {counted(domains, 'domain')}, {counted(len(result.removed_guests), 'L2')} "
            f"inside {'it' if domains == 1 else 'them'}, "
            f"{counted(len(result.removed_networks), 'network')}")


def print_timings(timings: list[dict[str, Any]], when: bool = False) -> None:
    """A row per phase; ``when``: with the local time each ended (`status` shows phases
    from several runs)."""
    table = Table(title="phases", box=None, pad_edge=False)
    for column in ("guest", "phase", "seconds", "outcome", *(("when",) if when else ())):
        table.add_column(column)
    for t in timings:
        ended = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t["end"]))
                 if isinstance(t.get("end"), int | float) else "")
        table.add_row(_shown(t["guest"]), _shown(t["phase"]), f"{t['seconds']:.1f}",
                      _shown(t["outcome"]), *((ended,) if when else ()))
    Console().print(table)


def print_facts(host: HostFacts) -> None:
    console = Console()
    table = Table(show_header=False, box=None)
    for section, values in host.model_dump(exclude={"format"}).items():
        if isinstance(values, dict):
            for key, value in values.items():
                if key == "flags":
                    value = " ".join(f for f in value if f in ("vmx", "svm", "hypervisor"))
                    key = "virtualization flags"
                table.add_row(f"{section}.{key}", _shown(str(value)))
        else:
            table.add_row(section, _shown(str(values)))
    console.print(table)


def status_json(status: LabStatus) -> dict[str, Any]:
    """`status --json`: the lab as seen, its timings, and when and how it was seen."""
    seen = asdict(status.seen)
    checked = {"at": _utc(seen.pop("at")), "by": seen.pop("by"), "live": status.live,
               "age_seconds": round(status.age, 2)}
    return seen | {"timings": status.timings, "checked": checked}


def _utc(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _age(seconds: float) -> str:
    """``12 s``, ``5 min``, ``3 h``, ``2 days``: how old a recorded status is."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _checked(status: LabStatus) -> str:
    if status.live:
        return f"asked now ({status.age:.1f} s)"
    by = "`up` left" if status.seen.by == "up" else "`status` saw"
    return (f"[yellow]recorded[/]: what {by} {_age(status.age)} ago "
            f"({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(status.seen.at))}); "
            "`nestlab status` asks again")


def print_status(status: LabStatus) -> None:
    console = Console()
    seen = status.seen
    sandbox = seen.sandbox
    console.print(f"lab [bold]{_shown(seen.lab)}[/] accel={seen.accel} "
                  + (f"sandbox={_shown(sandbox.netns)} "
                     f"({'running' if sandbox.running else 'stopped'})"
                     if sandbox else f"uri={_shown(seen.uri)}")
                  + (f" node={_shown(seen.node)}" if seen.node else ""))
    console.print(_checked(status), highlight=False)
    if seen.unanswered:
        console.print(f"[red]{_shown(seen.unanswered)}[/]: its networks, L1s and L2s are "
                      "unknown", highlight=False, soft_wrap=True)
    table = Table(box=None, pad_edge=False)
    for column in ("level", "name", "state", "address", "in"):
        table.add_column(column)
    for net in seen.networks:
        table.add_row("net", _shown(net.name), _shown(net.state), "", "")
    for host in seen.hosts:
        table.add_row("L1", _shown(host.name), _shown(host.state), host.address or "", "")
        for guest in host.guests:
            table.add_row("L2", _shown(guest.name), _shown(guest.state), _shown(guest.address),
                          _shown(host.name))
        if host.note:
            table.add_row("", "", f"[yellow]{_shown(host.note)}[/]", "", "")
    console.print(table)
    if status.timings:
        print_timings(status.timings, when=True)


def seats_status_json(lab: str, rows: list[SeatStatus]) -> dict[str, Any]:
    """`status --json` of a lab with seats: one object per seat, with its lab's whole
    status (as `status --seat N --json` prints it) when it is up."""
    return {"lab": lab, "seats": [
        {"seat": r.seat, "lab": r.lab, "node": r.node, "state": r.state,
         "l1s": {"running": r.l1s[0], "total": r.l1s[1]},
         "l2s": {"running": r.l2s[0], "total": r.l2s[1]},
         "last_up": None if r.last_up is None else {
             "end": iso_utc(r.last_up.end), "seconds": r.last_up.seconds,
             "outcome": r.last_up.outcome},
         "problem": r.problem,
         "status": None if r.status is None else status_json(r.status)}
        for r in rows]}


_SEAT_STATE = {"up": "[green]up[/]", "partly up": "[yellow]partly up[/]",
               "not running": "[yellow]not running[/]", "down": "down",
               "sandbox not running": "[yellow]sandbox not running[/]",
               "damaged": "[red]damaged[/]", "unknown": "[red]unknown[/]"}


def print_seats_status(lab: str, rows: list[SeatStatus]) -> None:
    """`status` of a lab with seats: one row per seat."""
    console = Console()
    console.print(f"lab [bold]{_shown(lab)}[/]: {counted(len(rows), 'seat')} "
                  f"({sum(r.state == 'up' for r in rows)} up)")
    table = Table(box=None, pad_edge=False)
    placed = any(r.node for r in rows)  # the node column, where seats are on nodes
    for column in ("seat", "lab", *(("node",) if placed else ()), "state", "L1s", "L2s",
                   "last up", "took", "outcome"):
        table.add_column(column)
    for r in rows:
        last = r.last_up
        table.add_row(str(r.seat), _shown(r.lab), *((_shown(r.node or ""),) if placed else ()),
                      _SEAT_STATE[r.state],
                      f"{r.l1s[0]}/{r.l1s[1]}" if r.status else "",
                      f"{r.l2s[0]}/{r.l2s[1]}" if r.status else "",
                      time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last.end))
                      if last else "", f"{last.seconds:.0f}s" if last else "",
                      last.outcome if last else "")
    console.print(table)
    for r in rows:
        if r.problem:
            console.print(f"[yellow]{_shown(r.lab)}[/]: {_shown(r.problem)}", highlight=False,
                          soft_wrap=True)
    console.print("`nestlab status --seat N` shows a seat's L1s, L2s and phases.",
                  highlight=False)


def print_seat_ups(outcomes: list[SeatUp]) -> None:
    """`up` of a lab with seats: how each seat's `up` ended."""
    console = Console()
    table = Table(box=None, pad_edge=False)
    for column in ("seat", "lab", "outcome", "seconds", "changed", "L2s proven"):
        table.add_column(column)
    for o in outcomes:
        mark = "[green]up[/]" if o.outcome == "up" else f"[red]{o.outcome}[/]"
        table.add_row(str(o.seat), _shown(o.lab), mark, f"{o.seconds:.0f}",
                      str(o.counts.get("changed", 0)), str(len(o.proofs)))
    console.print(table)
    for o in outcomes:
        if o.error:
            console.print(f"[red]{_shown(o.lab)}[/]: {_shown(o.error, keep_newlines=True)}",
                          highlight=False, soft_wrap=True)
            if o.hint:
                console.print(f"  hint: {_shown(o.hint)}", highlight=False, soft_wrap=True)


_STATE_STYLE = {"create": "[yellow]create[/]", "present": "[green]present[/]",
                "unknown": "[dim]unknown[/]", "skipped": "[dim]skipped[/]"}


def print_preview(preview: Preview) -> None:
    """`nestlab plan`: each step of `up` with what it would do, then a one-line summary."""
    console = Console()
    mode = "sandbox" if preview.sandbox else escape(preview.uri)
    if preview.node is not None:
        mode = f"node [bold]{escape(preview.node)}[/], {mode}"
    console.print(f"lab [bold]{escape(preview.lab)}[/] accel={preview.accel} ({mode})")
    if preview.changes:
        console.print("[yellow]The lab file differs from the plan the lab is up with: `up` "
                      "applies guests' memory and vCPUs (restarting them) and refuses anything "
                      "else:[/]")
        for change in preview.changes:
            console.print(f"  {escape(change)}", highlight=False)
    table = Table(box=None, pad_edge=False)
    for column in ("guest", "step", "up would"):
        table.add_column(column)
    for step in preview.steps:
        table.add_row(escape(step.guest), escape(step.step), _STATE_STYLE[step.state])
    console.print(table)
    counts = preview.counts()
    console.print(f"{counts['create']} to create, {counts['present']} present, "
                  f"{counts['unknown']} unknown, "
                  f"{counts['skipped']} skipped")


def labs_json(labs: list[LabSummary]) -> list[dict[str, Any]]:
    """`nestlab ls --json`: one object per lab, times as UTC ISO 8601."""
    return [asdict(lab) | {"last_up": iso_utc(lab.last_up) if lab.last_up else None}
            for lab in labs]


def print_labs(labs: list[LabSummary], root: str) -> None:
    """`nestlab ls`: one row per lab; a damaged one says why."""
    console = Console()
    if not labs:
        console.print(f"no labs in {_shown(root)}; bring one up with `nestlab up -f LABFILE`")
        return
    table = Table(box=None, pad_edge=False)
    seats = any(lab.seat_of for lab in labs)
    for column in ("lab", *(("seat",) if seats else ()), "state", "where", "accel", "L1s",
                   "L2s", "last up"):
        table.add_column(column)
    for lab in labs:
        where = "sandbox" if lab.sandbox else (lab.uri or "")
        if lab.node:
            where = f"node {lab.node} ({where})"
        last = f"{iso_utc(lab.last_up)} ({lab.last_up_outcome})" if lab.last_up else ""
        state = {"up": "[green]up[/]", "down": "down", "damaged": "[red]damaged[/]"}[lab.state]
        seat = (f"{lab.seat} of {_shown(lab.seat_of)}" if lab.seat_of else "",) if seats else ()
        table.add_row(_shown(lab.name), *seat, state, _shown(where), lab.accel or "",
                      _count(lab.l1s), _count(lab.l2s), last)
    console.print(table)
    for lab in labs:
        if lab.problem:
            console.print(f"[yellow]{_shown(lab.name)}[/]: {_shown(lab.problem)}",
                          highlight=False, soft_wrap=True)  # paths stay whole


def _count(value: int | None) -> str:
    return "" if value is None else str(value)


_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
"""A terminal control sequence (colours, cursor moves): a console log is full of them."""


def console_log_text(lines: list[str]) -> str:
    """`nestlab logs`: a guest's console lines, safe for the terminal: colours and cursor
    moves dropped, tabs expanded, any other control character shown escaped (a guest
    writes what it likes to its console)."""
    return "".join(escape_control_chars(_CSI.sub("", line).expandtabs()) + "\n"
                   for line in lines)


def print_verify(result: VerifyResult) -> None:
    """`verify`: one line per test, then the counts."""
    console = Console()
    table = Table(box=None, pad_edge=False)
    for column in ("outcome", "test", "seconds", "why"):
        table.add_column(column)
    colour = {"passed": "green", "failed": "red", "error": "red", "skipped": "yellow"}
    for test in result.tests:
        table.add_row(f"[{colour.get(test.outcome, 'white')}]{test.outcome}[/]",
                      _shown(test.id.split("/")[-1]), f"{test.seconds:.1f}",
                      _shown(test.message))
    console.print(table)
    counts = ", ".join(f"{result.count(o)} {o}" for o in ("passed", "failed", "error", "skipped")
                       if result.count(o))
    console.print(f"lab [bold]{_shown(result.lab)}[/]: {counts or 'no tests'} in "
                  f"{result.seconds:.1f} s" + (f"; JUnit XML in {result.junit}"
                                               if result.junit else ""), highlight=False)
