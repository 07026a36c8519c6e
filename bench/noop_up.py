"""Benchmark: `nestlab up` on a lab that is up and unchanged (a no-op), old against new
in the same run, next to the goal of issue #13 (<= 1 s).

No VM boots: L0's libvirt is libvirt's test driver and the L1s are FAKE
(tests/fakes/linux.py). Each SSH round trip to a fake L1 or L2 (connecting, one
command, one batch of commands) takes LATENCY seconds, each command inside the
L1 COMMAND seconds more, and a `virsh` command VIRSH seconds more again (it
starts a client and connects to libvirtd in an emulated guest). The defaults,
0.15 + 0.05 (+ 0.2 for virsh), make one virsh command cost bench/status.py's
0.4 s (issue #9's real L1s) and the old code's no-op `up` of the demo lab what
issue #13 measured (4-5 s with this process's start-up). How each cost splits
between the round trip and the command is assumed, and is what a batch saves:
a batch pays the round trip once, each command's own cost still.

"old" is the code of BASE (the commit this work started from), taken with `git
archive` into a temporary folder and run in its own process with its own fakes;
"new" is this tree, in another process; both make the same lab, bring it up
once without latency, then time `up` again with it. The in-process figures
leave out a new process's start-up: the CLI's `up` pays both, so the goal is
judged on the new-process figure, the in-process median plus that code's
start-up (a new Python importing nestlab.cli and every nestlab module its `up`
had loaded, timed apart; a new process cannot share the test driver's lab).

    .venv/bin/python bench/noop_up.py [RUNS] [--latency S] [--command S] [--virsh S]
                                      [--base REV]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = "dd7e1a5"  # the commit before the batched reads
GOAL = 1.0  # seconds, issue #13: `up` on a lab that is up
LABS = {"demo": (1, 1), "four": (4, 2)}  # name -> (L1s, L2s each)


def lab_file(folder: Path, name: str, l1s: int, l2s: int) -> Path:
    hosts = "".join(
        f"  - name: {name}{i}\n    os: debian-12\n    memory: 2GiB\n    networks: [lab]\n"
        f"    guests: [{', '.join(f'{{name: {name}{i}g{j}}}' for j in range(1, l2s + 1))}]\n"
        for i in range(1, l1s + 1))
    path = folder / f"{name}.yaml"
    path.write_text(f"lab: {name}\nnetworks:\n  - name: lab\n    cidr: 10.84.0.0/24\n"
                    f"hosts:\n{hosts}")
    return path


def measure_here(runs: int, latency: float, command: float,
                 virsh: float) -> dict[str, object]:
    """In the child: time a no-op `up` of each lab with the tree on sys.path[0]."""
    import pytest

    import nestlab
    from tests.fakes import linux as fakes
    from tests.fakes.lab import bring_up, fake_home, fake_l1s, open_l0

    trips = [0]
    real_run, real_prime_run = fakes.FakeLinuxL1.run, fakes.FakePrime.run
    real_prime_wait = fakes.FakePrime.wait_until_reachable

    def in_l1(argvs: list[list[str]]) -> None:
        time.sleep(virsh * sum(argv[0] == "virsh" for argv in argvs))

    def run(self: fakes.FakeLinuxL1, argv: list[str], timeout: float = 600.0) -> object:
        trips[0] += 1
        in_l1([argv])
        return real_run(self, argv, timeout)

    def prime_wait(self: fakes.FakePrime, *args: object, **kwargs: object) -> None:
        time.sleep(self.l1.latency)  # an L2's SSH handshake, through its L1
        trips[0] += 1
        real_prime_wait(self, *args, **kwargs)  # type: ignore[arg-type]

    def prime_run(self: fakes.FakePrime, argv: list[str], timeout: float = 600.0) -> object:
        time.sleep(self.l1.latency)
        trips[0] += 1
        return real_prime_run(self, argv, timeout)

    results: dict[str, object] = {"nestlab": nestlab.__file__}
    with tempfile.TemporaryDirectory(prefix="nestlab-noop-") as work, \
            pytest.MonkeyPatch.context() as patch:
        _l0, really_close = open_l0(patch)
        l1s = fake_l1s(patch)
        home = fake_home(Path(work), patch)
        for name, (count, l2s) in LABS.items():
            bring_up(lab_file(Path(work), name, count, l2s), home)
        patch.setattr(fakes.FakeLinuxL1, "run", run)
        patch.setattr(fakes.FakePrime, "run", prime_run)
        patch.setattr(fakes.FakePrime, "wait_until_reachable", prime_wait)
        batch = getattr(fakes.FakeLinuxL1, "run_batch", None)
        if batch is not None:
            def run_batch(self: fakes.FakeLinuxL1, argvs: list[list[str]],
                          timeout: float = 600.0) -> object:
                trips[0] += 1
                in_l1(argvs)
                return batch(self, argvs, timeout)
            patch.setattr(fakes.FakeLinuxL1, "run_batch", run_batch)
        for l1 in l1s.values():
            if hasattr(l1, "command_seconds"):
                l1.latency, l1.command_seconds = latency, command
            else:
                l1.latency = latency + command  # the old fake: one figure per command
        for name, (count, l2s) in LABS.items():
            seconds, changed = [], []
            connects = sum(l1.connected for l1 in l1s.values())
            trips[0] = 0
            for _ in range(runs):
                started = time.perf_counter()
                _proofs, reporter = bring_up(Path(work) / f"{name}.yaml", home)
                seconds.append(time.perf_counter() - started)
                changed.append(reporter.counts()["changed"])
            connects = sum(l1.connected for l1 in l1s.values()) - connects
            results[name] = {"seconds": seconds, "changed": changed,
                             "round_trips": trips[0] + connects, "l1s": count, "l2s": l2s}
        really_close()
    # What a new `nestlab up` process imports: more than `up` needs where the fakes
    # import something it does not, which errs towards a slower start-up.
    results["modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "nestlab")
    return results


def child(tree: Path, runs: int, latency: float, command: float,
          virsh: float) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, str(REPO / "bench" / "noop_up.py"), str(runs),
                          "--latency", str(latency), "--command", str(command),
                          "--virsh", str(virsh),
                          "--measure-here"], cwd=tree, env=env, check=True,
                         capture_output=True, text=True)
    answer: dict[str, object] = json.loads(out.stdout.splitlines()[-1])
    return answer


def base_tree(rev: str, folder: Path) -> Path:
    """BASE's files (the package, its templates and recipes, its fakes) in ``folder``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "nestlab", "templates",
                              "images", "tests"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    # nestlab.templates is the top-level templates/ (setup.cfg's package_dir).
    (folder / "nestlab" / "templates").symlink_to(folder / "templates")
    return folder


def startup(tree: Path, modules: object, runs: int) -> float:
    """Median seconds for a new Python to import ``modules`` from ``tree``."""
    assert isinstance(modules, list)
    code = "import nestlab.cli\n" + "".join(f"import {m}\n" for m in modules)
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=tree,
                       env={**os.environ, "PYTHONPATH": str(tree)})
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.15,
                        help="seconds per SSH round trip to a FAKE guest (default 0.15)")
    parser.add_argument("--command", type=float, default=0.05,
                        help="seconds per command inside a FAKE L1 (default 0.05)")
    parser.add_argument("--virsh", type=float, default=0.2,
                        help="seconds more per virsh command inside it (default 0.2)")
    parser.add_argument("--base", default=BASE, help=f"the old code's commit ({BASE})")
    parser.add_argument("--measure-here", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_here:
        sys.path.insert(0, os.getcwd())
        print(json.dumps(measure_here(args.runs, args.latency, args.command, args.virsh)))
        return
    with tempfile.TemporaryDirectory(prefix="nestlab-base-") as folder:
        costs = (args.runs, args.latency, args.command, args.virsh)
        base = base_tree(args.base, Path(folder))
        old = child(base, *costs)
        new = child(REPO, *costs)
        floors = {"old": startup(base, old["modules"], args.runs),
                  "new": startup(REPO, new["modules"], args.runs)}
    print(f"nestlab up on a lab that is up, libvirt's test driver, FAKE L1s and L2s: "
          f"{args.latency:.2f} s per round trip,\n{args.command:.2f} s per command inside an "
          f"L1, {args.virsh:.2f} s more per virsh command.\nold: {args.base} "
          f"({old['nestlab']}); new: this tree.\n")
    print(f"{'':<17} {'in process':^26} {'':>12} {'':>8}  {'new process':>11}")
    print(f"{'lab':<12} {'code':<4} {'median':>8} {'min':>8} {'max':>8} {'round trips':>12} "
          f"{'changed':>8}  {'median':>11}  goal <= {GOAL:.1f} s")
    for name in LABS:
        for label, result in (("old", old), ("new", new)):
            row = result[name]
            assert isinstance(row, dict)
            seconds = row["seconds"]
            median = statistics.median(seconds)
            whole = median + floors[label]
            trips = row["round_trips"] // args.runs
            print(f"{row['l1s']} L1 x {row['l2s']} L2 {label:<4} {median:7.3f}s "
                  f"{min(seconds):7.3f}s {max(seconds):7.3f}s {trips:>12} "
                  f"{max(row['changed']):>8}  {whole:10.3f}s  "
                  f"{'met' if whole <= GOAL else 'missed'}")
    print(f"\nnew process = in-process median + start-up (a new python importing nestlab.cli "
          f"and the\nnestlab modules its `up` loaded), median of {args.runs}: "
          f"old {floors['old']:.3f} s, new {floors['new']:.3f} s.")


if __name__ == "__main__":
    main()
