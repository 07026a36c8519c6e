"""Benchmark: the demo lab's `up` against its floor, measured in the same run.

Brings examples/linux-nested.yaml up RUNS times from nothing in a sandbox (images
cached: built first, untimed; `down --purge` between runs) and prints, per run and as
medians, next to issue #13's goals:

- `up` to the L2 proven (wall time of the command, a new process);
- the floor of the same run: the L1's boot (up's `ssh` step: from its start until its
  SSH answers) plus the L2's boot (its own uptime when it was proven, less the time
  nestlab took to notice it had announced itself). Everything else is nestlab's: the
  steps inside the L1, and the start of the L2's QEMU in the L1 (`virsh start`);
- the proof latency: from the L2's announcement on its console to its SSH answering;
- `up` again on the lab that is up (a no-op) and `status` of it, new processes.

Then the phase table of the median run, so that the remaining time can be read.
Root, real VMs:

    sudo .venv/bin/python bench/demo_up.py [RUNS]
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reset import LAB, LAB_FILE, nestlab  # bench/ is not a package

GOAL_UP = 60.0
GOAL_RATIO = 1.3
GOAL_LATENCY = 1.0
GOAL_NOOP = 1.0
GOAL_STATUS = 0.3


def proof_figures(result: dict[str, Any]) -> tuple[float, float]:
    """(the L2's uptime when proven, seconds from its announcement to its SSH) from up's
    JSON; the latency is 0 when the L2 answered at the first try (nothing to hear)."""
    [proof] = result["proofs"]
    evidence = proof["evidence"]
    uptime = float(re.search(r"up ([0-9.]+)s", evidence).group(1))  # type: ignore[union-attr]
    heard = re.search(r"([0-9.]+)s after it announced itself", evidence)
    return uptime, float(heard.group(1)) if heard else 0.0


def step_seconds(result: dict[str, Any], phase: str) -> float:
    return sum(t["seconds"] for t in result["timings"] if t["phase"] == phase)


def verdict(value: float, goal: float) -> str:
    return "met" if value <= goal else "missed"


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    home = Path(tempfile.mkdtemp(prefix="nestlab-bench-"))
    env = {**os.environ, "NESTLAB_HOME": str(home)}
    for image in ("debian-12", "prime"):
        nestlab(env, "image", "build", image)
    up = ["up", "--sandbox", "-f", str(LAB_FILE), "--json"]
    rows: list[dict[str, Any]] = []
    noop: list[float] = []
    status: list[float] = []
    lab_up = False
    try:
        for run in range(runs):
            lab_up = True
            seconds, result = nestlab(env, *up)
            uptime, latency = proof_figures(result)
            l1_boot = step_seconds(result, "ssh")
            floor = l1_boot + uptime - latency
            rows.append({"up": seconds, "l1": l1_boot, "l2": uptime - latency,
                         "floor": floor, "latency": latency, "result": result})
            if run == runs - 1:
                for _ in range(3):
                    noop.append(nestlab(env, *up)[0])
                    started = time.monotonic()
                    nestlab(env, "status", "--lab", LAB)
                    status.append(time.monotonic() - started)
            nestlab(env, "down", "--lab", LAB, "--purge")
            lab_up = False
    finally:
        if lab_up:  # a failed run: take down what it made
            nestlab(env, "down", "--lab", LAB, "--purge")
        shutil.rmtree(home, ignore_errors=True)

    print(f"demo lab: {LAB_FILE.name}, {runs} run(s), images cached\n")
    print(f"{'run':<5}{'up':>9}{'L1 boot':>9}{'L2 boot':>9}{'floor':>9}{'ratio':>8}"
          f"{'proof latency':>15}")
    for number, r in enumerate(rows, 1):
        print(f"{number:<5}{r['up']:>8.1f}s{r['l1']:>8.1f}s{r['l2']:>8.1f}s"
              f"{r['floor']:>8.1f}s{r['up'] / r['floor']:>7.2f}x{r['latency']:>14.2f}s")
    median = statistics.median
    up_s = median(r["up"] for r in rows)
    ratio = median(r["up"] / r["floor"] for r in rows)
    latency = median(r["latency"] for r in rows)
    print(f"\n{'figure (median)':<44}{'measured':>10}  goal")
    print(f"{'demo up to L2 proven (images cached)':<44}{up_s:>9.1f}s  <= {GOAL_UP:.0f} s: "
          f"{verdict(up_s, GOAL_UP)}")
    print(f"{'  the same, against the floor of its run':<44}{ratio:>9.2f}x  <= "
          f"{GOAL_RATIO}x: {verdict(ratio, GOAL_RATIO)}")
    print(f"{'L2 proven after it announced itself':<44}{latency:>9.2f}s  <= "
          f"{GOAL_LATENCY:.0f} s: {verdict(latency, GOAL_LATENCY)}")
    print(f"{'up on the lab that is up (new process)':<44}{median(noop):>9.2f}s  <= "
          f"{GOAL_NOOP:.0f} s: {verdict(median(noop), GOAL_NOOP)}")
    print(f"{'status of it, 1 L1 + 1 L2 (new process)':<44}{median(status):>9.2f}s  <= "
          f"{GOAL_STATUS} s: {verdict(median(status), GOAL_STATUS)} "
          "(4 L1s x 2 L2s: bench/status.py)")
    typical = sorted(rows, key=lambda r: r["up"])[(len(rows) - 1) // 2]
    print("\nphases of the median run (seconds):")
    for t in typical["result"]["timings"]:
        if t["seconds"] >= 0.05:
            print(f"  {t['guest']:<8}{t['phase']:<34}{t['seconds']:>7.1f}  {t['outcome']}")


if __name__ == "__main__":
    main()
