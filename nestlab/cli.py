"""The command line. Each command parses its options and calls one function.

This is the only place that prints for the user or chooses an exit code:
``NestlabError``s become one message and their exit code; anything else is a
bug and gets a short message, with the traceback only under ``--debug``.
Ctrl-C ends a command with exit 130 and what is true after it (each command
says, see ``interrupted=``); a reader that closes stdout early (``| head``)
ends it quietly with exit 141, as a shell reports for ``yes | head``.

Each command imports what it runs inside its own function, so that `nestlab --help`
loads none of the heavy libraries other commands need (libvirt, paramiko, pydantic,
jinja2, rich) and ``status --cached`` only rich, for its table: a new process pays
for what it uses (tests/unit/test_cli_imports.py holds that).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from nestlab import __version__
from nestlab.build.images import recipe_names
from nestlab.errors import InputError, NestlabError, escape_control_chars, shorten
from nestlab.lab import DEFAULT_LAB_FILE, MAX_SEATS
from nestlab.lab.systems import WINDOWS_IMAGES
from nestlab.plural import counted
from nestlab.progress import ProgressLines, Reporter
from nestlab.state.paths import data_root, lab_dir, labs_root
from nestlab.virt import DEFAULT_URI

if TYPE_CHECKING:
    from nestlab.commands.reset import LayerResult
    from nestlab.commands.restart import GuestResult
    from nestlab.host.facts import HostFacts
    from nestlab.lab.model import Lab, Node

Command = TypeVar("Command", bound=Callable[..., Any])

EXIT_INTERNAL = 70  # EX_SOFTWARE
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_STDOUT_CLOSED = 141
"""128 + SIGPIPE: what a shell reports for a program a closed pipe ended (``yes | head``),
so a script with ``set -o pipefail`` sees nestlab stop as it sees coreutils stop."""
MAX_ERROR_CHARS = 16_000  # 20 problems of a lab file fit; an exception's text may not

READ_ONLY = "Nothing was changed."


class Interrupted(NestlabError):
    """Ctrl-C; the hint says what the command left behind and how to go on."""

    exit_code = EXIT_INTERRUPTED


class NestlabCommand(click.Command):
    """A command that knows what is true when Ctrl-C stops it (``interrupted``)."""

    def __init__(self, *args: Any, interrupted: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.interrupted = interrupted

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted("interrupted", hint=self.interrupted) from None


class NestlabGroup(click.Group):
    """Turns nestlab's exceptions into one message and an exit code."""

    command_class = NestlabCommand
    group_class = type  # `image` is a NestlabGroup too

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return _invoke_flushed(super().invoke, ctx)
        except BrokenPipeError:
            _stdout_closed()
        except NestlabError as exc:
            if ctx.meta.get("nestlab.debug"):
                raise
            _fail(exc.message, exc.hint, exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:  # before or after any command
            _fail("interrupted", None, EXIT_INTERRUPTED)
        except Exception as exc:
            if ctx.meta.get("nestlab.debug"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc}",
                  "This is a bug in nestlab; rerun with --debug for the traceback and report it.",
                  EXIT_INTERNAL)


def _invoke_flushed(invoke: Callable[[click.Context], Any], ctx: click.Context) -> Any:
    """Run the command and flush stdout while its errors can still be handled: a closed
    pipe then shows here, not as "Exception ignored" when Python exits."""
    try:
        return invoke(ctx)
    finally:
        sys.stdout.flush()


def _stdout_closed() -> NoReturn:
    """The reader of stdout went away (``nestlab render ... | head``): nothing more can be
    said and nothing is wrong, so no message. stdout is pointed at /dev/null first, or
    Python would fail again flushing what is left when it exits."""
    with contextlib.suppress(OSError, ValueError):  # not a real file (Click's test runner)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    sys.exit(EXIT_STDOUT_CLOSED)


def _fail(message: str, hint: str | None, code: int) -> NoReturn:
    """Print one error and exit. Messages carry text from files (keys, values, paths,
    an exception's own words), so control characters are escaped and the length is
    capped here, the one place errors reach the terminal."""
    click.echo(f"nestlab: error: {_terminal_text(message)}", err=True)
    if hint:
        click.echo(f"hint: {_terminal_text(hint)}", err=True)
    sys.exit(code)


def _terminal_text(text: str) -> str:
    return escape_control_chars(shorten(text, MAX_ERROR_CHARS), keep_newlines=True)


@click.group(cls=NestlabGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nestlab")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--connect", "uri", envvar="LIBVIRT_DEFAULT_URI", default=DEFAULT_URI,
              show_default=True, metavar="URI",
              help="libvirt URI of the L0 host (or set LIBVIRT_DEFAULT_URI).")
@click.pass_context
def main(ctx: click.Context, debug: bool, uri: str) -> None:
    """Build nested-virtualization labs: L1 hypervisors on this host, L2 guests inside them.

    A lab is described by a lab file (nestlab.yaml, or -f FILE). Start with
    `nestlab check` to see whether and how this host can run it.
    """
    ctx.meta["nestlab.debug"] = debug
    if not debug:
        # paramiko logs every refused connection while a guest boots; nestlab reports
        # what matters itself.
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    ctx.obj = {"uri": uri}


def _lab_option(required: bool) -> Callable[[Command], Command]:
    return click.option(
        "-f", "--file", "lab_file", type=click.Path(dir_okay=False, path_type=Path),
        default=None if not required else DEFAULT_LAB_FILE, show_default=required,
        help="Lab file." + ("" if required else f" [default: {DEFAULT_LAB_FILE} if present]"),
    )


_facts_option = click.option(
    "--facts", "facts_file", type=click.Path(dir_okay=False, path_type=Path),
    help="Decide from a recorded `nestlab facts --json` file instead of this machine.",
)
_seat_option = click.option(
    "--seat", type=click.IntRange(1, MAX_SEATS), metavar="N",
    help="Seat N of a lab with seats (the lab <lab>-sNN) [default: every seat, where the "
         "command can act on several; else required].")


_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
_quiet_option = click.option(
    "-q", "--quiet", is_flag=True,
    help="Show no progress. Otherwise progress goes to stderr: timed lines on a terminal, "
         "lines with the UTC time when stderr is a pipe or a file (CI, tee). The lab's "
         "events.jsonl records every step either way.")


def _host_facts(ctx: click.Context, facts_file: Path | None) -> HostFacts:
    from nestlab.host.facts import load_facts, read_host_facts

    if facts_file is not None:
        return load_facts(facts_file)
    return read_host_facts(ctx.obj["uri"], data_root())


def _facts_at(uri: str) -> HostFacts:
    """The facts of the host at ``uri``: this one's, or a node's over libvirt and SSH."""
    from nestlab.host.facts import read_host_facts
    from nestlab.transport.node import node_address

    if node_address(uri) is None:
        return read_host_facts(uri, data_root())
    from nestlab.host.nodefacts import read_facts_over_ssh

    return read_facts_over_ssh(uri, data_root())


_node_option = click.option(
    "--node", "node_uris", multiple=True, metavar="URI",
    help="A libvirt host the lab's seats may be placed on, e.g. qemu+ssh://root@node1/system "
         "(repeat for each; replaces the lab file's nodes:).")


@main.command(interrupted=READ_ONLY)
def schema() -> None:
    """Print the lab file's JSON Schema (for editors and validators)."""
    from nestlab.lab.model import Lab

    click.echo(json.dumps(Lab.model_json_schema(), indent=2))


@main.command(interrupted=READ_ONLY)
@_json_option
@click.pass_context
def facts(ctx: click.Context, as_json: bool) -> None:
    """Print what nestlab reads from this host (the format `check --facts` accepts)."""
    from nestlab import report

    host = _host_facts(ctx, None)
    if as_json:
        click.echo(host.model_dump_json(indent=2))
        return
    report.print_facts(host)


@main.command(interrupted=READ_ONLY)
@_lab_option(required=False)
@_facts_option
@click.option("--sandbox", is_flag=True,
              help="Check for `up --sandbox`: nestlab's own libvirtd, not the one at --connect.")
@_node_option
@_json_option
@click.pass_context
def check(ctx: click.Context, lab_file: Path | None, facts_file: Path | None, sandbox: bool,
          node_uris: tuple[str, ...], as_json: bool) -> None:
    """Check whether this host can run the lab, and how (kvm or tcg).

    Every check that is not ok comes with the exact fix. A lab with nodes (nodes: or
    --node): every node, each checked for one seat, its facts read over its libvirt
    URI and SSH. Exit status: 0 when the lab can run here (on every node), 1 when it
    cannot, 2 for bad input.
    """
    from nestlab import report
    from nestlab.host.check import check_host

    lab = _optional_lab(lab_file)
    if node_uris or (lab is not None and lab.nodes):
        from nestlab.commands.nodes import check_nodes, lab_nodes, refuse_this_host_options

        if lab is None:
            raise InputError("--node checks a lab on its nodes: give the lab file (-f FILE)")
        nodes = lab_nodes(lab, node_uris)
        refuse_this_host_options(nodes, sandbox, facts_file)
        checked = check_nodes(lab, nodes, _facts_at)
        if as_json:
            click.echo(json.dumps(report.nodes_check_json(checked, lab), indent=2))
        else:
            report.print_nodes_check(checked, lab)
        sys.exit(0 if all(c.report is not None and c.report.can_run for c in checked) else 1)
    verdict = check_host(_host_facts(ctx, facts_file), lab, "sandbox" if sandbox else "host")
    if as_json:
        click.echo(json.dumps(report.check_json(verdict, lab), indent=2))
    else:
        report.print_check(verdict, lab)
    sys.exit(0 if verdict.can_run else 1)


def _optional_lab(lab_file: Path | None) -> Lab | None:
    from nestlab.lab.labfile import load_lab

    if lab_file is not None:
        return load_lab(lab_file)
    if Path(DEFAULT_LAB_FILE).exists():
        return load_lab(DEFAULT_LAB_FILE)
    return None


@main.command(interrupted="Some files may be written already; `nestlab render` again "
                           "rewrites them all.")
@_lab_option(required=True)
@_facts_option
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the rendered files into.")
@_seat_option
@_json_option
@click.pass_context
def render(ctx: click.Context, lab_file: Path, facts_file: Path | None, out_dir: Path,
           seat: int | None, as_json: bool) -> None:
    """Write every file `up` would define or send (libvirt XML for L0 and inside each L1).

    Nothing is defined or started: read the files before anything happens.
    L2s carry the lab's SSH public key once its first `up` has made it, a
    placeholder before; a Windows L1's password is never written, only where
    it is kept. A lab with seats: each seat into its own folder (OUT/LAB-s01, ...),
    or seat N alone into OUT with --seat N.
    """
    from nestlab.commands.selection import labs_of_file
    from nestlab.lab.labfile import load_lab

    lab = load_lab(lab_file)
    labs = labs_of_file(lab, seat, str(lab_file))
    if len(labs) == 1:
        described: Any = _render_lab(ctx, labs[0], facts_file, out_dir, as_json)
    else:
        described = {"lab": lab.name, "seats": [
            _render_lab(ctx, one, facts_file, out_dir / one.name, as_json) for one in labs]}
    if as_json:
        click.echo(json.dumps(described, indent=2))


def _render_lab(ctx: click.Context, lab: Lab, facts_file: Path | None, out_dir: Path,
                as_json: bool) -> dict[str, Any]:
    """Render one lab (or seat) into ``out_dir``; the JSON it is described by, printed
    here unless ``as_json`` (the caller prints one document)."""
    from nestlab.host.check import check_host
    from nestlab.plan import make_plan
    from nestlab.render import render_artifacts, write_artifacts
    from nestlab.state.keys import existing_public_key, public_key_path

    report = check_host(_host_facts(ctx, facts_file), lab)
    directory = lab_dir(lab.name)
    public = public_key_path(directory)
    key = existing_public_key(directory)
    plan = make_plan(lab, report.decide(lab.name), directory, key)
    written = write_artifacts(render_artifacts(plan), out_dir)
    described = {"lab": lab.name, "accel": plan.accel,
                 "public_key": str(public) if key else None,
                 "files": [str(p) for p in written]}
    if as_json:
        return described
    click.echo(f"lab {lab.name} ({plan.accel}): wrote {counted(len(written), 'file')} to "
               f"{out_dir}")
    if any(h.guests for h in plan.hosts):
        click.echo(f"  L2s get the lab's SSH key from {public}" if key else
                   "  the lab has no SSH key yet (its first `up` makes it): the L2 XML "
                   "shows a placeholder")
    for path in written:
        click.echo(f"  {path}")
    return described


@main.command(name="plan", interrupted=READ_ONLY)
@_lab_option(required=True)
@_facts_option
@click.option("--sandbox", is_flag=True,
              help="For a lab not up yet: plan it as `up --sandbox` would run it.")
@_node_option
@_seat_option
@_json_option
@click.pass_context
def plan_command(ctx: click.Context, lab_file: Path, facts_file: Path | None, sandbox: bool,
                 node_uris: tuple[str, ...], seat: int | None, as_json: bool) -> None:
    """Show what `up` would do on this host now, step by step, without doing any of it.

    Each step is `present`, `create` (up would make or start it), `unknown`
    (inside an L1 up has to reach first, or in a libvirt that cannot be asked:
    a sandbox not running, a host recorded with --facts) or `skipped`. For a
    lab that is up, what the lab file would change in its plan is listed too.
    A lab with seats: every seat, or --seat N. A lab with nodes (nodes: or --node):
    the node each seat is placed on (kept where an earlier `up` placed it, else
    placed now by the room each node reports), decided by that node's facts.
    """
    from nestlab import report
    from nestlab.commands.nodes import (
        lab_nodes,
        node_refusal,
        placement,
        refuse_this_host_options,
    )
    from nestlab.commands.plan import preview
    from nestlab.commands.selection import labs_of_file
    from nestlab.host.check import check_host
    from nestlab.lab.labfile import load_lab

    previews = []
    whole = load_lab(lab_file)
    labs = labs_of_file(whole, seat, str(lab_file))
    nodes = lab_nodes(whole, node_uris)
    refuse_this_host_options(nodes, sandbox, facts_file)
    placed = placement(labs, nodes) if nodes else {}
    facts_of: dict[str, HostFacts] = {}  # read once per host, however many seats it has
    for lab in labs:
        node = placed.get(lab.name)
        uri = node.uri if node else ctx.obj["uri"]
        refusal = node_refusal(whole, uri, node.name if node else None)
        if refusal is not None:
            raise refusal  # as `up` would
        if uri not in facts_of:
            facts_of[uri] = _facts_at(uri) if node else _host_facts(ctx, facts_file)
        verdict = check_host(facts_of[uri], lab, "sandbox" if sandbox else "unused")
        previews.append(preview(lab, verdict.decide(lab.name), lab_dir(lab.name),
                                uri, sandbox, ask_libvirt=facts_file is None,
                                node=node.name if node else None))
    if as_json:
        click.echo(json.dumps(previews[0].to_json() if len(previews) == 1 else
                              {"lab": whole.name,
                               "seats": [p.to_json() for p in previews]}, indent=2))
        return
    for result in previews:
        report.print_preview(result)


@main.group()
def image() -> None:
    """Build and list base images (cached, keyed by their recipe)."""


@image.command("build", interrupted="The unfinished builds were removed; `nestlab image build` "
                                    "again starts them over.")
@click.argument("names", nargs=-1, required=True,
                type=click.Choice([*recipe_names(), *WINDOWS_IMAGES]), metavar="NAME...")
@click.option("--iso", type=click.Path(dir_okay=False, path_type=Path),
              help="windows-server-*: your ISO of that Windows Server (evaluation works).")
@click.option("--edition", type=click.Choice(["standard", "datacenter"]), default="standard",
              show_default=True, help="windows-server-*: the edition to install.")
@_quiet_option
@_json_option
@click.pass_context
def image_build(ctx: click.Context, names: tuple[str, ...], iso: Path | None, edition: str,
                quiet: bool, as_json: bool) -> None:
    """Build the images NAME... (a no-op for those already cached), at the same time.

    debian-12 is the Linux L1 and prime the small L2 guest, both from Debian
    packages via mmdebstrap and this host's apt sources (root needed).
    windows-server-2016, -2019 and -2022 are installed unattended from --iso
    on a kvm host (about 20-40 minutes) and generalized with sysprep, one at a time.
    """
    from nestlab.build.images import ConcurrentBuilds

    lines = ProgressLines("quiet" if quiet else None)
    names = tuple(dict.fromkeys(names))
    windows = [n for n in names if n in WINDOWS_IMAGES]
    if windows and len(names) > 1:
        raise InputError(f"build {windows[0]} on its own: it needs --iso and a VM of its own")
    if windows:
        from nestlab.build.winimage import build_windows_image
        from nestlab.host.check import check_host
        from nestlab.host.facts import read_host_facts

        if iso is None:
            raise InputError(f"building {names[0]} needs --iso PATH")
        report = check_host(read_host_facts(ctx.obj["uri"], data_root()), daemon="host")
        results = [build_windows_image(names[0], iso, edition, ctx.obj["uri"], report,
                                       lambda step: lines.say(names[0], step))]
    else:
        builds = ConcurrentBuilds(names, lines.say)
        results = [builds.result(name) for name in names]
    if as_json:
        answers = [image.to_json() | {"built_now": built} for image, built in results]
        click.echo(json.dumps(answers[0] if len(answers) == 1 else answers, indent=2))
        return
    for built_image, built in results:
        if built:
            click.echo(f"built {built_image.name} in {built_image.seconds:.0f}s: "
                       f"{built_image.path}")
        else:
            click.echo(f"{built_image.name} is up to date: {built_image.path}")


@image.command("identify", interrupted=READ_ONLY)
@click.option("--iso", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A Windows Server setup ISO (evaluation works).")
@_json_option
def image_identify(iso: Path, as_json: bool) -> None:
    """Name the base image a Windows ISO builds (windows-server-2016, -2019 or -2022),
    read from the image names in its install.wim; `make acceptance-windows` asks it."""
    from nestlab.build.winiso import base_image_of, read_windows_iso

    found = read_windows_iso(iso)
    name = base_image_of(found, iso)
    if as_json:
        click.echo(json.dumps({"image": name, "install_images": list(found.image_names)},
                              indent=2))
    else:
        click.echo(name)


@image.command("list", interrupted=READ_ONLY)
@_json_option
def image_list(as_json: bool) -> None:
    """List the images in the cache."""
    from nestlab.build.images import list_images
    from nestlab.lab.model import human_size

    images = list_images()
    if as_json:
        click.echo(json.dumps([i.to_json() for i in images], indent=2))
        return
    if not images:
        click.echo("no images built yet; try: nestlab image build debian-12")
    for i in images:
        click.echo(f"{i.name:12} {i.key}  {human_size(i.size):>9}  {i.built}  {i.path}")


def _lab_selector(command: Command) -> Command:
    """-f FILE or --lab NAME, and --seat N: ``selection.select_labs`` maps them to folders."""
    command = _seat_option(command)
    command = click.option("--lab", "lab_name", metavar="NAME",
                           help="Name of a lab brought up earlier (instead of -f).")(command)
    return click.option("-f", "--file", "lab_file", default=DEFAULT_LAB_FILE, show_default=True,
                        type=click.Path(dir_okay=False, path_type=Path),
                        help="Lab file (its `lab:` name selects the lab).")(command)


def _selected_lab_dir(lab_file: Path, lab_name: str | None, seat: int | None) -> Path:
    """The folder of the one lab named by --lab (a lab name only, never a path) or -f,
    and --seat for a lab with seats."""
    from nestlab.commands.selection import one_lab_dir

    return one_lab_dir(lab_file, lab_name, seat)


@main.command(interrupted="Run the same `nestlab up` again: it continues where this one "
                           "stopped.")
@_lab_option(required=True)
@click.option("--sandbox", is_flag=True,
              help="Run the lab in nestlab's own libvirtd inside a network namespace (root).")
@click.option("--seats", type=click.IntRange(1, MAX_SEATS), metavar="N",
              help="Bring up N seats, one copy of the lab each (instead of the lab file's "
                   "seats:).")
@click.option("--baseline", is_flag=True,
              help="Once every L2 is proven, keep the lab as it is now (L2s and L1s shut "
                   "down cleanly, disks frozen, started again): what `nestlab reset` returns "
                   "to. An L1 that has a baseline keeps it.")
@_node_option
@_quiet_option
@_json_option
@click.pass_context
def up(ctx: click.Context, lab_file: Path, sandbox: bool, seats: int | None, baseline: bool,
       node_uris: tuple[str, ...], quiet: bool, as_json: bool) -> None:
    """Bring the lab up: L1 guests, their hypervisor, and their L2 guests, proven running.

    Every step first checks whether it is already done: running `up` again on
    a running lab changes nothing, and after a failure or Ctrl-C it continues.
    A lab with seats brings up every seat, a few at a time within the host's CPUs
    and memory; a seat that fails does not stop the others, and `up` again
    finishes only what is missing. Exit 1 when any seat failed. With nodes (nodes:
    or --node) each seat, or the lab, is placed on one node as a whole (see `plan`)
    and stays there.
    """
    from nestlab import report
    from nestlab.commands.nodes import lab_nodes, placement, refuse_this_host_options
    from nestlab.commands.up import up as bring_up
    from nestlab.lab.labfile import load_lab

    lab = load_lab(lab_file)
    nodes = lab_nodes(lab, node_uris)
    refuse_this_host_options(nodes, sandbox)
    if seats is not None or lab.seats is not None:
        _up_seats(ctx, lab, lab_file, seats, sandbox, baseline, quiet, as_json, nodes)
        return
    node = placement([lab], nodes)[lab.name] if nodes else None
    directory = lab_dir(lab.name)
    reporter = Reporter(lab.name, directory, "up", show=False if quiet else None)
    proofs = bring_up(lab, lab_file, directory, node.uri if node else ctx.obj["uri"], sandbox,
                      _facts_at, reporter, node=node.name if node else None)
    kept: list[str] = []
    if baseline:
        from nestlab.commands.reset import make_baseline

        made = make_baseline(directory, reporter)
        kept, proofs = made.hosts, made.proofs or proofs
        for note in made.notes:
            reporter.say("L0", f"note: {note}")
    elapsed = round(time.monotonic() - reporter.started, 1)
    if as_json:
        click.echo(json.dumps({"lab": lab.name, "seconds": elapsed, **reporter.counts(),
                               "proofs": [asdict(p) for p in proofs],
                               **({"baseline": kept} if baseline else {}),
                               "timings": reporter.timings}, indent=2))
        return
    report.print_timings(reporter.timings)
    if kept:
        click.echo(f"baseline kept for {', '.join(kept)}: `nestlab reset` returns to it")
    for proof in proofs:
        click.echo(f"L2 {proof.guest} ({proof.address}) in {proof.l1}: proven: "
                   f"{proof.evidence}")
    click.echo(f"lab {lab.name} is up ({elapsed:.0f}s): {reporter.summary()}. "
               f"Try: nestlab status -f {lab_file}")


def _up_seats(ctx: click.Context, lab: Lab, lab_file: Path, seats: int | None, sandbox: bool,
              baseline: bool, quiet: bool, as_json: bool, nodes: tuple[Node, ...]) -> None:
    from nestlab import report
    from nestlab.commands.seats import up_seats

    lines = ProgressLines("quiet" if quiet else None)
    outcomes, at_once = up_seats(lab, lab_file, seats, ctx.obj["uri"], sandbox, _facts_at,
                                 lines, baseline, nodes)
    elapsed = round(time.monotonic() - lines.started, 1)
    failed = [o for o in outcomes if o.outcome != "up"]
    if as_json:
        click.echo(json.dumps({"lab": lab.name, "seconds": elapsed, "seats_at_once": at_once,
                               "failed": len(failed), "seats": [asdict(o) for o in outcomes]},
                              indent=2))
    else:
        report.print_seat_ups(outcomes)
        click.echo(f"lab {lab.name}: {len(outcomes) - len(failed)} of "
                   f"{counted(len(outcomes), 'seat')} up ({elapsed:.0f}s, {at_once} at a time)."
                   + (f" `nestlab up -f {lab_file}` again finishes the failed ones."
                      if failed else f" Try: nestlab status -f {lab_file}"))
    if failed:
        sys.exit(1)


@main.command(interrupted=READ_ONLY)
@_lab_selector
@click.option("--cached", is_flag=True,
              help="Show what the last `status` or `up` recorded, at once, with its age; "
                   "asks neither libvirt nor any L1.")
@_json_option
def status(lab_file: Path, lab_name: str | None, seat: int | None, cached: bool,
           as_json: bool) -> None:
    """Show the lab: L1s as libvirt sees them, L2s as each L1's hypervisor sees them.

    Asks now: libvirt on this host, then every running L1 at once, each given
    5 s to answer. An L1 that libvirt runs but that does not answer yet
    is `booting`; the L2s of an L1 that is not running or does not answer are
    `unknown` (not absent). An L1's address is its reserved one, shown while
    its domain runs. What it sees is recorded in the lab's folder for
    `--cached`. The phase timings are, per step, those of the `up` that last
    did the work, so a later `up` that had nothing to do keeps the boot times.
    A lab with seats: one row per seat (its state, L1s and L2s running, its last
    `up`), all seats asked at once; --seat N shows that seat's lab in full.
    """
    from nestlab import report
    from nestlab.commands.selection import select_labs
    from nestlab.state.seen import cached_status

    selection = select_labs(lab_file, lab_name, seat)
    if selection.seated:
        from nestlab.commands.seats import seats_status

        rows = seats_status(selection.folders, cached)
        if as_json:
            click.echo(json.dumps(report.seats_status_json(selection.lab, rows), indent=2))
        else:
            report.print_seats_status(selection.lab, rows)
        return
    folder = selection.folders[0]
    if cached:
        status_report = cached_status(folder)
    else:
        from nestlab.commands.context import LabContext
        from nestlab.commands.status import lab_status

        status_report = lab_status(LabContext.load(folder))
    if as_json:
        click.echo(json.dumps(report.status_json(status_report), indent=2))
        return
    report.print_status(status_report)


@main.command(interrupted=READ_ONLY)
@_lab_option(required=True)
@click.argument("tests", nargs=-1, type=click.Path(path_type=Path))
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write JUnit XML (xunit2) of every test to FILE.")
@click.option("--no-builtin", is_flag=True, help="Run only TESTS, not nestlab's own checks.")
@_seat_option
@_json_option
def verify(lab_file: Path, tests: tuple[Path, ...], junit: Path | None, no_builtin: bool,
           seat: int | None, as_json: bool) -> None:
    """Check the lab that is up: nestlab's built-in checks (each L1 runs its hypervisor
    with nesting on, each L2 runs and answers) and your own pytest/testinfra files TESTS,
    through nestlab's pytest plugin. Prints one line per test; exits 1 when any fails.

    The built-in checks are ordinary testinfra tests: `python -c "import nestlab.checks,
    os; print(os.path.dirname(nestlab.checks.__file__))"` shows where to read them.
    """
    from nestlab import report
    from nestlab.commands.selection import labs_of_file
    from nestlab.commands.verify import result_json
    from nestlab.commands.verify import verify as run_checks
    from nestlab.lab.labfile import load_lab

    labs = labs_of_file(load_lab(lab_file), seat, str(lab_file))
    if len(labs) > 1:
        raise InputError(f"lab {labs[0].name[:-len('-s01')]} has {len(labs)} seats: verify "
                         "checks one", hint="Say which with --seat N.")
    result = run_checks(labs[0].name, lab_file, list(tests), junit, builtin=not no_builtin,
                        seat=seat)
    if as_json:
        click.echo(json.dumps(result_json(result), indent=2))
    else:
        report.print_verify(result)
    if not result.ok:
        sys.exit(1)


@main.command(interrupted="Some files may be written already; remove them or choose "
                           "another folder.")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--template", type=click.Choice(["linux", "windows"]), default="linux",
              show_default=True, help="A Linux L1 with KVM, or a Windows L1 with Hyper-V.")
@click.option("--name", metavar="NAME", help="The lab's name [default: from FOLDER's name].")
def init(folder: Path, template: str, name: str | None) -> None:
    """Start a course or project in FOLDER: nestlab.yaml, a Makefile (make lab, verify,
    ssh HOST=..., status, down, clean; for a course seats N=..., reset SEAT=..., handouts,
    and verify of every seat: each prints the command it runs), example checks in tests/
    and a README for students. Writes only new files."""
    from nestlab.commands.init import init as scaffold

    for path in scaffold(folder, template, name):
        click.echo(f"wrote {path}")
    click.echo(f"next: cd {shlex.quote(str(folder))} && make lab && make verify")


@main.command(name="ls", interrupted=READ_ONLY)
@_json_option
def ls(as_json: bool) -> None:
    """List the labs on this host: up or down, sandbox or libvirt URI, accel, how many
    L1s and L2s, and when each was last brought up.

    Read from the labs' own folders only (`nestlab status --lab NAME` asks libvirt about
    one lab). "up" means the lab has state from an `up` that no `down` removed. A lab
    whose state cannot be read is listed as damaged, with why.
    """
    from nestlab import report
    from nestlab.commands.labs import list_labs

    labs = list_labs()
    if as_json:
        click.echo(json.dumps(report.labs_json(labs), indent=2))
        return
    report.print_labs(labs, str(labs_root()))


@main.command(interrupted=READ_ONLY)
@_lab_selector
@click.argument("name")
@click.option("-n", "--lines", default=100, show_default=True, type=click.IntRange(1, 10_000),
              help="How many of the last lines to show.")
@_json_option
def logs(lab_file: Path, lab_name: str | None, seat: int | None, name: str, lines: int,
         as_json: bool) -> None:
    """Show the end of guest NAME's serial console log (boot messages, kernel panics).

    An L1's log is kept on this host, so it is there even when the L1 does not
    answer; an L2's is read inside its (running) L1. Windows guests keep none:
    `nestlab console NAME` says how to see their screen.
    """
    from nestlab import report
    from nestlab.commands.access import console_log
    from nestlab.commands.context import LabContext

    log = console_log(LabContext.load(_selected_lab_dir(lab_file, lab_name, seat)), name, lines)
    if as_json:
        click.echo(json.dumps(asdict(log), indent=2))
        return
    click.echo(f"{log.guest}: the last {counted(len(log.lines), 'line')} of {log.path}"
               + (f" in {log.where}" if log.where != "L0" else ""), err=True)
    click.echo(report.console_log_text(log.lines), nl=False)


@main.command(name="exec", context_settings={"ignore_unknown_options": True},
              interrupted="The command may have run in part on the guest, or may still run "
                          "there.")
@_lab_selector
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(lab_file: Path, lab_name: str | None, seat: int | None, name: str,
          command: tuple[str, ...]) -> None:
    """Run COMMAND on guest NAME (an L1, or an L2 through its L1); exit with its status.

    COMMAND's stdin is empty (as with `ssh -n`); `nestlab ssh NAME` is interactive.

    Example: nestlab exec prime1 -- uname -a
    """
    from nestlab.commands.access import run_command
    from nestlab.commands.context import LabContext

    lab_ctx = LabContext.load(_selected_lab_dir(lab_file, lab_name, seat))
    result = run_command(lab_ctx, name, list(command))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.exit_status)


@main.command(interrupted=READ_ONLY)
@_lab_selector
@click.argument("name")
def ssh(lab_file: Path, lab_name: str | None, seat: int | None, name: str) -> None:
    """Open an interactive shell on guest NAME with OpenSSH (an L2 through its L1)."""
    from nestlab.commands.access import require_ssh, write_ssh_config
    from nestlab.commands.context import LabContext

    lab_ctx = LabContext.load(_selected_lab_dir(lab_file, lab_name, seat))
    require_ssh(lab_ctx, name)
    _exec_tool(["ssh", "-F", str(write_ssh_config(lab_ctx)), name])


@main.command(interrupted=READ_ONLY)
@_lab_selector
@click.argument("name")
def console(lab_file: Path, lab_name: str | None, seat: int | None, name: str) -> None:
    """Attach to guest NAME's console (a serial console: Ctrl-] leaves). For a Windows L1:
    where its screen is (VNC on 127.0.0.1) and the lab's password for it."""
    from nestlab.commands.access import console_command
    from nestlab.commands.context import LabContext

    how = console_command(LabContext.load(_selected_lab_dir(lab_file, lab_name, seat)), name)
    if isinstance(how, str):
        click.echo(how)
        return
    _exec_tool(how)


def _exec_tool(argv: list[str]) -> NoReturn:
    from nestlab import programs

    if programs.locate(argv[0]) is None:
        raise NestlabError(f"{argv[0]} is not installed",
                           hint=programs.install_command([programs.program(argv[0])]))
    sys.stdout.flush()
    os.execvp(argv[0], argv)  # noqa: S606 - an argument list, no shell


@main.command(interrupted="Run `nestlab down` again: it removes what is left.")
@_lab_selector
@click.option("--purge", is_flag=True, help="Also remove the lab's keys, events and state.")
@_quiet_option
@_json_option
@click.pass_context
def down(ctx: click.Context, lab_file: Path, lab_name: str | None, seat: int | None,
         purge: bool, quiet: bool, as_json: bool) -> None:
    """Remove everything the lab created (L2s first) and nothing else. Images stay cached.

    A lab with seats: every seat, one after another (a seat that fails does not stop
    the others; exit 1 if any did), or --seat N.
    """
    from nestlab import report
    from nestlab.commands.down import down as take_down
    from nestlab.commands.selection import select_labs

    selection = select_labs(lab_file, lab_name, seat)
    if selection.seated:
        _down_seats(ctx, selection.lab, selection.folders, purge, quiet, as_json)
        return
    directory = selection.folders[0]
    reporter = Reporter(directory.name, directory, "down", show=False if quiet else None)
    result = take_down(directory, purge, reporter, ctx.obj["uri"])
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2))
        return
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"lab {directory.name} is down: {report.down_summary(result)}"
               + (", purged its state" if result.purged else ""))


def _down_seats(ctx: click.Context, lab: str, folders: list[Path], purge: bool, quiet: bool,
                as_json: bool) -> None:
    from nestlab import report
    from nestlab.commands.seats import down_seats

    outcomes = down_seats(folders, purge, ctx.obj["uri"],
                          ProgressLines("quiet" if quiet else None))
    failed = [o for o in outcomes if o.error]
    if as_json:
        click.echo(json.dumps({"lab": lab, "failed": len(failed),
                               "seats": [asdict(o) for o in outcomes]}, indent=2))
    else:
        for o in outcomes:
            if o.result is not None:
                click.echo(f"seat {o.seat} ({o.lab}) is down: {report.down_summary(o.result)}"
                           + (", purged its state" if o.result.purged else ""))
                for note in o.result.notes:
                    click.echo(f"note: {o.lab}: {note}", err=True)
            else:
                click.echo(f"seat {o.seat} ({o.lab}): " + _terminal_text(
                    f"FAILED: {o.error}" if o.error else str(o.note)))
    if failed:
        _fail(f"{len(failed)} of {counted(len(outcomes), 'seat')} of lab {lab} were not "
              "taken down",
              "`nestlab down` again removes what is left.", 1)


@main.command(interrupted="The guest may be left stopped: `nestlab restart NAME` again, or "
                           "`nestlab up`, starts it.")
@_lab_selector
@click.argument("name")
@_quiet_option
@_json_option
def restart(lab_file: Path, lab_name: str | None, seat: int | None, name: str, quiet: bool,
            as_json: bool) -> None:
    """Restart guest NAME (power off and on; its disk is kept) and prove it runs again.

    An L1 is restarted through libvirt on this host, then taken through up's
    steps for it: its L2s, which do not start by themselves, are started again
    and proven. An L2 is restarted inside its L1 (virsh, or Hyper-V's
    Restart-VM) and proven. Refused while another command holds the lab.
    """
    from nestlab.commands.restart import restart as restart_guest

    directory = _selected_lab_dir(lab_file, lab_name, seat)
    reporter = Reporter(directory.name, directory, "restart", show=False if quiet else None)
    _guest_done(restart_guest(directory, name, reporter), "restarted", reporter, as_json)


@main.command(interrupted="The guest may be half removed: `nestlab rebuild NAME` again starts "
                           "over, and `nestlab up` makes what is missing.")
@_lab_selector
@click.argument("name")
@_quiet_option
@_json_option
def rebuild(lab_file: Path, lab_name: str | None, seat: int | None, name: str, quiet: bool,
            as_json: bool) -> None:
    """Rebuild guest NAME from its base image: everything on its disk is lost.

    An L1 loses its domain, its disk (an overlay of the cached image), its boot
    files and first-boot medium, and the pinned SSH host keys of it and its
    L2s; an L2 loses its domain and disk inside its L1. Then up's own steps
    make the guest again and prove the L2s. Refused while another command
    holds the lab; a NAME that is not a guest of the lab is exit 2.
    """
    from nestlab.commands.rebuild import rebuild as rebuild_guest

    directory = _selected_lab_dir(lab_file, lab_name, seat)
    reporter = Reporter(directory.name, directory, "rebuild", show=False if quiet else None)
    _guest_done(rebuild_guest(directory, name, reporter), "rebuilt", reporter, as_json)


def _guest_done(result: GuestResult, verb: str, reporter: Reporter, as_json: bool) -> None:
    elapsed = round(time.monotonic() - reporter.started, 1)
    if as_json:
        click.echo(json.dumps(asdict(result) | {"seconds": elapsed, **reporter.counts(),
                                                "timings": reporter.timings}, indent=2))
        return
    for proof in result.proofs:
        click.echo(f"L2 {proof.guest} ({proof.address}) in {proof.l1}: proven: "
                   f"{proof.evidence}")
    click.echo(f"{result.level} {result.guest} {verb} ({elapsed:.0f}s): {reporter.summary()}")


@main.command(interrupted="Nothing of the unfinished handout is left: run it again.")
@_lab_selector
@click.option("--out", "out_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="A new (or empty) folder for the handout.")
@click.option("--jump", metavar="USER@HOST[:PORT]",
              help="Your host as students reach it with their own account there: SSH to "
                   "the L1s goes through it (ProxyJump).")
@_json_option
def handout(lab_file: Path, lab_name: str | None, seat: int | None, out_dir: Path,
            jump: str | None, as_json: bool) -> None:
    """Write what a student needs to reach the lab into DIR: an OpenSSH config (L1s by
    address, through --jump; L2s through their L1; host keys pinned), the lab's own SSH
    key (0600), a Windows L1's Administrator password, and README.txt (machines,
    addresses, how to connect, what not to do). It opens this lab only.

    A lab in a sandbox is refused: its guests are reachable only inside its namespace.
    """
    from nestlab.commands.context import LabContext
    from nestlab.commands.handout import parse_jump, write_handout

    hop = parse_jump(jump) if jump is not None else None
    written = write_handout(LabContext.load(_selected_lab_dir(lab_file, lab_name, seat)), out_dir,
                            hop)
    if as_json:
        click.echo(json.dumps({"lab": written.lab, "folder": str(written.folder),
                               "files": written.files, "ssh": written.ssh_guests,
                               "windows": written.windows_l1s}, indent=2))
        return
    click.echo(f"handout of lab {written.lab} in {written.folder}: {', '.join(written.files)}")
    if written.ssh_guests:
        click.echo(f"  students: cd {shlex.quote(written.folder.name)} && ssh -F ssh_config "
                   f"{written.ssh_guests[0]}")


@main.command(name="_proxy", hidden=True)
@click.option("--lab-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.argument("name")
def proxy(lab_dir: Path, name: str) -> None:
    """ProxyCommand for OpenSSH/testinfra: relay stdin/stdout to NAME's SSH port."""
    from nestlab.commands.access import relay
    from nestlab.commands.context import LabContext

    relay(LabContext.load(lab_dir), name)


@main.command(name="ssh-config",
              interrupted="`nestlab ssh-config` again writes the config afresh.")
@_lab_selector
def ssh_config(lab_file: Path, lab_name: str | None, seat: int | None) -> None:
    """Write the lab's OpenSSH client config and print its path.

    Every guest is a Host entry by name (L2s reached through their L1), so
    `ssh -F PATH prime1` works, and so does pytest-testinfra:
    `pytest --hosts=paramiko://kvm1 --ssh-config=PATH`.
    """
    from nestlab.commands.access import write_ssh_config
    from nestlab.commands.context import LabContext

    click.echo(str(write_ssh_config(LabContext.load(_selected_lab_dir(lab_file, lab_name, seat)))))


@main.command(interrupted="The lab may be half reset: `nestlab reset` again (or `nestlab up`) "
                           "finishes it.")
@_lab_selector
@_quiet_option
@_json_option
def reset(lab_file: Path, lab_name: str | None, seat: int | None, quiet: bool,
          as_json: bool) -> None:
    """Return every L1 and its L2s to the lab's baseline, then prove the L2s.

    The baseline is what `nestlab up --baseline` kept once `up` had proven the
    L2s. Each L1 is powered off, its disk's top layer (everything written since)
    is thrown away and a new empty one put on the baseline; then up's own steps
    start the L1s and their L2s and prove them. Nothing is provisioned again.
    """
    from nestlab.commands.reset import reset as reset_lab

    directory = _selected_lab_dir(lab_file, lab_name, seat)
    reporter = Reporter(directory.name, directory, "reset", show=False if quiet else None)
    _layers_done(reset_lab(directory, reporter), f"lab {directory.name} reset", reporter,
                 as_json)


@main.group()
def snapshot() -> None:
    """Named states of a whole lab (every L1 with its L2s): save, restore, list, delete.

    A snapshot is taken with the L2s shut down cleanly inside their L1s and the
    L1s shut down; it costs no copy (the L1's disk becomes a read-only layer).
    """


@snapshot.command(name="save", interrupted="The snapshot may be incomplete: `nestlab up` "
                                            "starts the lab; `nestlab snapshot delete NAME` "
                                            "removes what was saved.")
@_lab_selector
@click.argument("name")
@_quiet_option
@_json_option
def snapshot_save(lab_file: Path, lab_name: str | None, seat: int | None, name: str,
                  quiet: bool, as_json: bool) -> None:
    """Keep the lab as it is now as snapshot NAME (letters, digits, - and _)."""
    from nestlab.commands import snapshot as snapshots

    directory = _selected_lab_dir(lab_file, lab_name, seat)
    reporter = Reporter(directory.name, directory, "snapshot", show=False if quiet else None)
    _layers_done(snapshots.save(directory, name, reporter), f"snapshot {name} saved",
                 reporter, as_json)


@snapshot.command(name="restore", interrupted="The lab may be half restored: the same "
                                               "command again finishes it.")
@_lab_selector
@click.argument("name")
@_quiet_option
@_json_option
def snapshot_restore(lab_file: Path, lab_name: str | None, seat: int | None, name: str,
                     quiet: bool, as_json: bool) -> None:
    """Return the lab to snapshot NAME (what was not saved is lost), then prove the L2s."""
    from nestlab.commands import snapshot as snapshots

    directory = _selected_lab_dir(lab_file, lab_name, seat)
    reporter = Reporter(directory.name, directory, "snapshot", show=False if quiet else None)
    _layers_done(snapshots.restore(directory, name, reporter), f"snapshot {name} restored",
                 reporter, as_json)


@snapshot.command(name="list", interrupted=READ_ONLY)
@_lab_selector
@_json_option
def snapshot_list(lab_file: Path, lab_name: str | None, seat: int | None,
                  as_json: bool) -> None:
    """List the lab's snapshots: name, when saved, size on disk, and whether complete."""
    from nestlab.commands import snapshot as snapshots

    found = snapshots.list_snapshots(_selected_lab_dir(lab_file, lab_name, seat))
    if as_json:
        click.echo(json.dumps([asdict(s) for s in found], indent=2))
        return
    if not found:
        click.echo("no snapshots")
        return
    click.echo(f"{'NAME':<24} {'SAVED':<21} {'SIZE':>10}  L1s")
    for snap in found:
        where = ", ".join(snap.hosts) + (f" (missing: {', '.join(snap.missing)})"
                                         if snap.missing else "")
        click.echo(f"{snap.name:<24} {snap.saved:<21} {_disk_size(snap.bytes_on_disk):>10}  "
                   f"{where}")


@snapshot.command(name="delete", interrupted="`nestlab snapshot delete NAME` again deletes "
                                              "what is left of it.")
@_lab_selector
@click.argument("name")
@_json_option
def snapshot_delete(lab_file: Path, lab_name: str | None, seat: int | None, name: str,
                    as_json: bool) -> None:
    """Delete snapshot NAME; refused while a later snapshot or an L1's disk builds on it."""
    from nestlab.commands import snapshot as snapshots

    result = snapshots.delete(_selected_lab_dir(lab_file, lab_name, seat), name)
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2))
        return
    click.echo(f"snapshot {name} deleted ({', '.join(result.hosts)})")


def _disk_size(size: int) -> str:
    """Bytes on disk for people: a fresh layer is a few hundred KiB."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20)):
        if size >= scale:
            return f"{size / scale:.1f}{unit}"
    return f"{size / 1024:.0f}KiB"


def _layers_done(result: LayerResult, done: str, reporter: Reporter, as_json: bool) -> None:
    elapsed = round(time.monotonic() - reporter.started, 1)
    if as_json:
        click.echo(json.dumps(asdict(result) | {"seconds": elapsed, **reporter.counts(),
                                                "timings": reporter.timings}, indent=2))
        return
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    for proof in result.proofs:
        click.echo(f"L2 {proof.guest} ({proof.address}) in {proof.l1}: proven: "
                   f"{proof.evidence}")
    click.echo(f"{done} ({elapsed:.0f}s): {reporter.summary()}")
