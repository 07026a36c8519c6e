"""Fuzz the lab-file reader through the CLI in-process, and say what it cost.

Runs CASES mutated lab files (default 2000) through `nestlab check` and
`nestlab render` with Click's CliRunner, using the same seeds, hostile tokens
and mutations as tests/unit/test_labfile_fuzz.py but drawn with `random`, so
a run is repeatable from --seed and can be much longer than the test. Prints
the cases, the exits by code, the slowest case and its time, the peak
memory (the process's max RSS before and after the cases; --tracemalloc adds
the peak Python allocation within one command, but slows every allocation
and so inflates the times), and every case that broke the property (an exit code other than 0, 1
or 2, a traceback, "internal error", a raw control character, 20 KB of
output); exits 1 if there was one. Nothing leaves the machine: the facts come
from a recorded file and NESTLAB_HOME is a temporary folder.

    .venv/bin/python bench/fuzz_labfile.py [CASES] [--seed N] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nestlab.cli import main  # noqa: E402
from tests.unit.test_labfile_fuzz import (  # noqa: E402
    FACTS_FILE,
    HOSTILE_TOKENS,
    LAB_KEYS,
    LAB_SCALARS,
    MAX_OUTPUT,
    SEED_TEXTS,
    Mutation,
    mutate,
)


@dataclass
class Case:
    number: int
    origin: str
    steps: list[Mutation]
    text: bytes


def lab_shaped(rng: random.Random, depth: int = 0) -> Any:
    """A value built from lab keys and values, nested a few levels."""
    roll = rng.random()
    if depth > 3 or roll < 0.45:
        return rng.choice([*LAB_SCALARS, rng.randint(-2, 70), True, None, "x" * rng.randint(0, 8)])
    if roll < 0.7:
        return [lab_shaped(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(LAB_KEYS): lab_shaped(rng, depth + 1) for _ in range(rng.randint(1, 5))}


def chunk(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(HOSTILE_TOKENS).encode()
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 6)))


def make_case(rng: random.Random, number: int) -> Case:
    if rng.random() < 0.6:
        index = rng.randrange(len(SEED_TEXTS))
        origin, seed = f"examples[{index}]", SEED_TEXTS[index]
    else:
        data = {rng.choice(LAB_KEYS): lab_shaped(rng) for _ in range(rng.randint(1, 6))}
        origin = "generated"
        seed = yaml.safe_dump(data, default_flow_style=rng.choice([False, True, None]))
    steps: list[Mutation] = [
        (rng.choice(["insert", "delete", "replace", "repeat", "grow"]), rng.randrange(1 << 16),
         rng.randint(1, 64), chunk(rng))
        for _ in range(rng.randint(0, 6))
    ]
    return Case(number, origin, steps, mutate(seed.encode(), steps))


def broken(exit_code: int, exception: BaseException | None, output: str) -> str | None:
    """Why a run breaks the property, or None."""
    if exit_code not in (0, 1, 2):
        return f"exit {exit_code}"
    if exception is not None and not isinstance(exception, SystemExit):
        return f"raised {exception!r}"
    for needle in ("Traceback", "internal error"):
        if needle in output:
            return needle
    if any(c in output for c in ("\x1b", "\x9b", "\x07", "\x00")):
        return "raw control character in the output"
    if len(output) >= MAX_OUTPUT:
        return f"{len(output)} characters of output"
    return None


def main_bench() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="?", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also measure each command's peak Python allocation (slower)")
    args = parser.parse_args()
    rng = random.Random(args.seed)  # noqa: S311 - repeatable cases, not secrets
    exits: dict[str, Counter[int]] = {"check": Counter(), "render": Counter()}
    slowest: tuple[float, str, Case | None] = (0.0, "", None)
    peak_traced: int | None = 0 if args.tracemalloc else None
    failures: list[str] = []
    rss_before = max_rss_mib()
    if args.tracemalloc:
        tracemalloc.start()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nestlab-fuzz-") as work:
        lab_file, out_dir = Path(work) / "lab.yaml", Path(work) / "out"
        env = {"NESTLAB_HOME": str(Path(work) / "home")}
        for number in range(args.cases):
            case = make_case(rng, number)
            lab_file.write_bytes(case.text)
            for command in ("check", "render"):
                argv = [command, "--facts", FACTS_FILE, "-f", str(lab_file)]
                if command == "render":
                    argv += ["--out", str(out_dir)]
                if peak_traced is not None:
                    tracemalloc.reset_peak()
                begun = time.monotonic()
                try:
                    result = CliRunner().invoke(main, argv, env=env)
                except MemoryError:  # a regression; CliRunner lets it out while capturing
                    exits[command][-1] += 1
                    failures.append(f"case {number} ({case.origin}, {case.steps!r:.300}) "
                                    f"{command}: MemoryError")
                    continue
                seconds = time.monotonic() - begun
                if peak_traced is not None:
                    peak_traced = max(peak_traced, tracemalloc.get_traced_memory()[1])
                exits[command][result.exit_code] += 1
                if seconds > slowest[0]:
                    slowest = (seconds, command, case)
                why = broken(result.exit_code, result.exception, result.output)
                if why:
                    failures.append(f"case {number} ({case.origin}, {case.steps!r:.300}) "
                                    f"{command}: {why}")
    elapsed = time.monotonic() - started
    tracemalloc.stop()
    report(args, exits, slowest, (rss_before, max_rss_mib(), peak_traced), elapsed, failures)
    return 1 if failures else 0


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def report(args: argparse.Namespace, exits: dict[str, Counter[int]],
           slowest: tuple[float, str, Case | None],
           memory: tuple[float, float, int | None], elapsed: float,
           failures: list[str]) -> None:
    seconds, command, case = slowest
    print(f"cases: {args.cases} (seed {args.seed}), each through check and render, "
          f"{elapsed:.1f}s in all")
    for name, counter in exits.items():
        print(f"{name} exits: " + ", ".join(f"{code if code >= 0 else 'MemoryError'}: {n}"
                                            for code, n in sorted(counter.items())))
    if case is not None:
        print(f"slowest: case {case.number}, {command}, {seconds * 1000:.0f} ms "
              f"({case.origin}, {len(case.text)} bytes, steps {case.steps!r:.200})")
    rss_before, rss_after, peak_traced = memory
    print(f"peak memory: max RSS of the process {rss_after:.0f} MiB after the cases, "
          f"{rss_before:.0f} MiB before them (imports)"
          + (f"; {peak_traced / 2**20:.1f} MiB traced by Python within one command"
             if peak_traced is not None else ""))
    print(f"property broken: {len(failures)}")
    for line in failures[:20]:
        print(f"  {line}")


if __name__ == "__main__":
    sys.exit(main_bench())
