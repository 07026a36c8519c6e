"""Benchmark: `nestlab reset` of the demo lab against a fresh `nestlab up`, in one run.

Brings examples/linux-nested.yaml up RUNS times from nothing (images cached: they
are built once first, untimed; `down --purge` between runs), then once more with
`--baseline` (up, then the baseline kept), and resets it RUNS times; times a
snapshot save and restore; prints them side by side with the goal (reset <= 50 %
of a fresh up). Then the disk an extra seat or a reset costs at creation: a new L1
overlay on the base image (what `up` makes for each seat's L1) and a new top layer
on the baseline (what `reset` makes), as allocated bytes (goal <= 1 MiB), and the
L1's memory kept with its baseline (what makes a reset a restore, not a boot).
Root, real VMs, in a sandbox:

    sudo .venv/bin/python bench/reset.py [RUNS]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LAB_FILE = REPO / "examples" / "linux-nested.yaml"
LAB = "linux-nested"
MiB = 1024 * 1024


def nestlab(env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one nestlab command, and its JSON (when --json was asked)."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "nestlab", *args], env=env,
                            capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"nestlab {' '.join(args)} failed:\n{result.stderr}")
    return seconds, (json.loads(result.stdout) if "--json" in args else {})


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def new_layer_bytes(backing: Path, folder: Path) -> int:
    """What one new qcow2 layer on ``backing`` takes on disk when it is created."""
    layer = folder / f"layer-{backing.stem}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    str(backing), str(layer)], check=True)
    size = allocated(layer)
    layer.unlink()
    return size


def row(label: str, values: list[float], goal: str = "") -> str:
    return (f"{label:<38}{statistics.median(values):>8.1f}s{min(values):>8.1f}s"
            f"{max(values):>8.1f}s{len(values):>6}  {goal}")


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    home = Path(tempfile.mkdtemp(prefix="nestlab-bench-"))
    env = {**os.environ, "NESTLAB_HOME": str(home)}
    for image in ("debian-12", "prime"):
        nestlab(env, "image", "build", image)
    up = ["up", "--sandbox", "-f", str(LAB_FILE), "--json"]
    lab = ["--lab", LAB, "--json"]
    fresh: list[float] = []
    resets: list[float] = []
    try:
        for _ in range(runs):
            fresh.append(nestlab(env, *up)[0])
            nestlab(env, "down", "--lab", LAB, "--purge")
        baseline = nestlab(env, *up, "--baseline")[0]
        for _ in range(runs):
            resets.append(nestlab(env, "reset", *lab)[0])
        save = nestlab(env, "snapshot", "save", "bench", *lab)[0]
        restore = nestlab(env, "snapshot", "restore", "bench", *lab)[0]
        host_dir = home / "labs" / LAB / "hosts" / "kvm1"
        top_after_boot = allocated(host_dir / "disk.qcow2")
        memory = allocated(host_dir / "baseline.state")
        with tempfile.TemporaryDirectory() as scratch:
            base = json.loads(subprocess.run(
                ["qemu-img", "info", "-U", "--output=json", str(host_dir / "baseline.qcow2")],
                capture_output=True, text=True, check=True).stdout)["full-backing-filename"]
            seat = new_layer_bytes(Path(base), Path(scratch))
            top = new_layer_bytes(host_dir / "baseline.qcow2", Path(scratch))
    finally:
        subprocess.run([sys.executable, "-m", "nestlab", "down", "--lab", LAB, "--purge"],
                       env=env, capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)
    share = statistics.median(resets) / statistics.median(fresh)
    print(f"\n{'demo lab: ' + LAB_FILE.name:<38}{'median':>9}{'min':>9}{'max':>9}{'runs':>6}")
    print(row("fresh up (images cached)", fresh))
    print(row("reset", resets,
              f"{share:.0%} of a fresh up; goal <= 50 %: {'met' if share <= 0.5 else 'missed'}"))
    print(row("fresh up --baseline (up, then keep)", [baseline]))
    print(row("snapshot save", [save]))
    print(row("snapshot restore", [restore]))
    print(f"\n{'disk at creation':<38}{'allocated':>12}")
    for label, size in (("new seat: L1 overlay on the base image", seat),
                        ("reset: new top on the baseline", top)):
        print(f"{label:<38}{size / 1024:>9.0f}KiB  goal <= 1 MiB: "
              f"{'met' if size <= MiB else 'missed'}")
    print(f"{'top layer after restore':<38}{top_after_boot / MiB:>9.1f}MiB")
    print(f"{'the baseline memory kept per L1':<38}{memory / MiB:>9.1f}MiB  (once per seat, "
          "when its baseline is kept)")


if __name__ == "__main__":
    main()
