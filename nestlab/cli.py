"""The command line. Each command parses its options and calls one function.

This is the only place that prints for the user or chooses an exit code:
``NestlabError``s become one message and their exit code; anything else is a
bug and gets a short message, with the traceback only under ``--debug``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nestlab import __version__
from nestlab.errors import NestlabError
from nestlab.hostcheck import HostReport, Status, check_host
from nestlab.hostfacts import HostFacts, load_facts, read_host_facts
from nestlab.labfile import DEFAULT_LAB_FILE, load_lab
from nestlab.model import Lab
from nestlab.paths import data_root, lab_dir
from nestlab.plan import make_plan
from nestlab.render import render_artifacts, write_artifacts

Command = TypeVar("Command", bound=Callable[..., Any])
DEFAULT_URI = "qemu:///system"
EXIT_INTERNAL = 70  # EX_SOFTWARE


class NestlabGroup(click.Group):
    """Turns nestlab's exceptions into one message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NestlabError as exc:
            if ctx.meta.get("nestlab.debug"):
                raise
            _fail(exc.message, exc.hint, exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            _fail("interrupted", None, 130)
        except Exception as exc:
            if ctx.meta.get("nestlab.debug"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc}",
                  "This is a bug in nestlab; rerun with --debug for the traceback and report it.",
                  EXIT_INTERNAL)


def _fail(message: str, hint: str | None, code: int) -> NoReturn:
    click.echo(f"nestlab: error: {message}", err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)
    sys.exit(code)


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
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _host_facts(ctx: click.Context, facts_file: Path | None) -> HostFacts:
    if facts_file is not None:
        return load_facts(facts_file)
    return read_host_facts(ctx.obj["uri"], data_root())


@main.command()
def schema() -> None:
    """Print the lab file's JSON Schema (for editors and validators)."""
    click.echo(json.dumps(Lab.model_json_schema(), indent=2))


@main.command()
@_json_option
@click.pass_context
def facts(ctx: click.Context, as_json: bool) -> None:
    """Print what nestlab reads from this host (the format `check --facts` accepts)."""
    host = _host_facts(ctx, None)
    if as_json:
        click.echo(host.model_dump_json(indent=2))
        return
    console = Console()
    table = Table(show_header=False, box=None)
    for section, values in host.model_dump(exclude={"format"}).items():
        if isinstance(values, dict):
            for key, value in values.items():
                if key == "flags":
                    value = " ".join(f for f in value if f in ("vmx", "svm", "hypervisor"))
                    key = "virtualization flags"
                table.add_row(f"{section}.{key}", escape(str(value)))
        else:
            table.add_row(section, escape(str(values)))
    console.print(table)


@main.command()
@_lab_option(required=False)
@_facts_option
@_json_option
@click.pass_context
def check(ctx: click.Context, lab_file: Path | None, facts_file: Path | None,
          as_json: bool) -> None:
    """Check whether this host can run the lab, and how (kvm or tcg).

    Every check that is not ok comes with the exact fix. Exit status: 0 when
    the lab can run here, 1 when it cannot, 2 for bad input.
    """
    lab = _optional_lab(lab_file)
    report = check_host(_host_facts(ctx, facts_file), lab)
    if as_json:
        click.echo(json.dumps(_report_json(report, lab), indent=2))
    else:
        _print_report(report, lab)
    sys.exit(0 if report.can_run else 1)


def _optional_lab(lab_file: Path | None) -> Lab | None:
    if lab_file is not None:
        return load_lab(lab_file)
    if Path(DEFAULT_LAB_FILE).exists():
        return load_lab(DEFAULT_LAB_FILE)
    return None


def _report_json(report: HostReport, lab: Lab | None) -> dict[str, Any]:
    return {
        "lab": lab.name if lab else None,
        "accel": report.accel,
        "can_run": report.can_run,
        "vendor": report.vendor,
        "summary": report.summary,
        "checks": [asdict(c) | {"status": c.status.value} for c in report.checks],
    }


_MARK = {Status.ok: "[green]ok[/]", Status.warn: "[yellow]warn[/]", Status.fail: "[red]FAIL[/]"}


def _print_report(report: HostReport, lab: Lab | None) -> None:
    console = Console()
    table = Table(show_header=False, box=None, pad_edge=False)
    for c in report.checks:
        table.add_row(_MARK[c.status], c.name, escape(c.detail))
    console.print(table)
    for c in report.checks:
        if c.fix:
            console.print(f"\n[bold]{c.name}[/] fix:")
            console.print(escape(c.fix), highlight=False)
    verdict = "[green]can run[/]" if report.can_run else "[red]cannot run[/]"
    subject = f"lab {escape(lab.name)}" if lab else "a lab"
    console.print(f"\naccel: [bold]{report.accel}[/]. {escape(report.summary)}")
    console.print(f"This host {verdict} {subject}.")


@main.command()
@_lab_option(required=True)
@_facts_option
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the rendered files into.")
@_json_option
@click.pass_context
def render(ctx: click.Context, lab_file: Path, facts_file: Path | None, out_dir: Path,
           as_json: bool) -> None:
    """Write every file `up` would define (libvirt XML for L0 and inside each L1).

    Nothing is defined or started: read the files before anything happens.
    """
    lab = load_lab(lab_file)
    report = check_host(_host_facts(ctx, facts_file), lab)
    plan = make_plan(lab, report, lab_dir(lab.name))
    written = write_artifacts(render_artifacts(plan), out_dir)
    if as_json:
        click.echo(json.dumps({"lab": lab.name, "accel": plan.accel,
                               "files": [str(p) for p in written]}, indent=2))
    else:
        click.echo(f"lab {lab.name} ({plan.accel}): wrote {len(written)} files to {out_dir}")
        for path in written:
            click.echo(f"  {path}")
