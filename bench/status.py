"""Benchmark: how long `nestlab status` takes for a lab of 1 and of 4 L1s (2 L2s each),
asking now and from the recorded status (--cached), next to the old sequential
status as the baseline, all in the same run.

No VM boots: L0's libvirt is libvirt's test driver and the L1s are FAKE
(tests/fakes/linux.py) that answer after LATENCY seconds per SSH round trip
(connecting, or one command). The default, 0.4 s, is chosen so that the old code
reproduces what issue #9 measured on real emulated L1s (2 s for one L1 with two
L2s, 6.5-7.4 s for four L1s, Python's start-up included). The figures are
nestlab's own overhead plus that stated latency; the guests are fakes.

The baseline is the algorithm `status` had before (commit f6a17dd), copied
below: one L1 after another, each reached with a 20 s deadline, `virsh list
--all --name` then one `virsh domstate` per domain, and a DHCP lease lookup
per L1. `--cached` is also timed as a new process (`python -m nestlab status
--cached`, Python's start-up and imports included, as JSON and as the table people
read), which asks no libvirt and so needs no fake, next to `nestlab --help` as the
floor of any new process.

    .venv/bin/python bench/status.py [RUNS] [--latency SECONDS]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nestlab.commands.context import LabContext  # noqa: E402
from nestlab.commands.status import lab_status  # noqa: E402
from nestlab.drivers import driver_for  # noqa: E402
from nestlab.state.seen import cached_status  # noqa: E402
from nestlab.virt import objects  # noqa: E402
from tests.fakes.lab import bring_up, fake_home, fake_l1s, open_l0  # noqa: E402
from tests.fakes.linux import FakeLinuxL1  # noqa: E402

GOAL = 0.3  # seconds, issue #9: status of a 4-L1 lab from the recorded state
LABS = {"one": 1, "four": 4}  # lab name -> L1s, each with two L2s


def lab_file(folder: Path, name: str, l1s: int) -> Path:
    # Names of their own: the FAKE L1s are kept by name, one libvirt each.
    hosts = "".join(
        f"  - name: {name}{i}\n    os: debian-12\n    memory: 2GiB\n    networks: [lab]\n"
        f"    guests: [{{name: {name}{i}a}}, {{name: {name}{i}b}}]\n" for i in range(1, l1s + 1))
    path = folder / f"{name}.yaml"
    path.write_text(f"lab: {name}\nnetworks:\n  - name: lab\n    cidr: 10.83.0.0/24\n"
                    f"hosts:\n{hosts}")
    return path


def sequential_status(ctx: LabContext) -> dict[str, Any]:
    """The old `status` (f6a17dd), reduced to what it did: each L1 in turn."""
    conn = ctx.libvirt()
    owned = {dom.name(): dom for dom, _ in objects.owned_domains(conn, ctx.name)}
    hosts = {}
    for host in ctx.plan.hosts:
        dom = owned.get(host.domain_name)
        nic = host.nics[0]
        objects.lease_address(conn, nic.network, nic.mac)
        states: dict[str, str] = {}
        if dom is not None and dom.isActive() and host.guests:
            session = driver_for(ctx, host).session(host)
            session.wait_until_reachable(20)
            names = session.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"])
            for name in names.stdout.split():
                states[name] = session.run(["virsh", "-c", "qemu:///system", "domstate",
                                            name]).stdout.strip()
            session.close()
        hosts[host.name] = states
    return hosts


def timed(action: Callable[[], object], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return seconds


def cli_cached(home: Path, lab: str, *flags: str) -> None:
    subprocess.run([sys.executable, "-m", "nestlab", "status", "--lab", lab, "--cached",
                    *flags], check=True, capture_output=True,
                   env={**os.environ, "NESTLAB_HOME": str(home)})


def cli_help() -> None:
    subprocess.run([sys.executable, "-m", "nestlab", "--help"], check=True,
                   capture_output=True)


def measure_lab(home: Path, name: str, count: int,
                runs: int) -> list[tuple[str, str, list[float], bool]]:
    lab_dir = home / "labs" / name
    ctx = LabContext.load(lab_dir)
    label = f"{count} L1 x 2 L2"
    return [
        (label, "old: one L1 after another", timed(partial(sequential_status, ctx), runs),
         False),
        (label, "live: all L1s at once", timed(partial(lab_status, ctx), runs), False),
        (label, "cached, in process", timed(partial(cached_status, lab_dir), runs), True),
        (label, "cached, new process (CLI)", timed(partial(cli_cached, home, name, "--json"),
                                                   runs), True),
        (label, "  the same, as the table", timed(partial(cli_cached, home, name), runs),
         True),
    ]


def measure(runs: int, latency: float) -> list[tuple[str, str, list[float], bool]]:
    """(lab, mode, seconds per run, whether the goal applies) for every lab and mode."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="nestlab-bench-") as work, \
            pytest.MonkeyPatch.context() as patch:
        _l0, really_close = open_l0(patch)
        l1s: dict[str, FakeLinuxL1] = fake_l1s(patch)
        home = fake_home(Path(work), patch)
        for name, count in LABS.items():
            bring_up(lab_file(Path(work), name, count), home)
        for l1 in l1s.values():
            l1.latency = latency
        for name, count in LABS.items():
            rows += measure_lab(home, name, count, runs)
        rows.append(("-", "floor: nestlab --help (CLI)", timed(cli_help, runs), False))
        really_close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.4,
                        help="seconds per SSH round trip of a FAKE L1 (default 0.4)")
    args = parser.parse_args()
    rows = measure(args.runs, args.latency)
    print(f"nestlab status on libvirt's test driver; FAKE L1s answer after {args.latency:.2f} s "
          "per SSH round trip\n(connect or command). Figures: nestlab's own overhead plus "
          "that latency; the guests are fakes.\n")
    print(f"{'lab':<13} {'status':<28} {'median':>8} {'min':>8} {'max':>8}  runs  "
          f"goal <= {GOAL} s")
    for label, mode, seconds, has_goal in rows:
        median = statistics.median(seconds)
        verdict = ("met" if median <= GOAL else "missed") if has_goal else ""
        print(f"{label:<13} {mode:<28} {median:7.3f}s {min(seconds):7.3f}s "
              f"{max(seconds):7.3f}s  {len(seconds):>4}  {verdict}")
    print("\nA new process (CLI rows) spends most of its time starting Python and importing "
          "nestlab;\nthe floor row is that alone, for a command that does nothing.")


if __name__ == "__main__":
    main()
