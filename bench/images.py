"""Benchmark: the images when they are cached (in process, as `up` asks for them, and as
`nestlab image build` from a new process), the disk a new L1 takes at creation, and
(only when asked) both images built from nothing at the same time; each next to the
goal of issue #13 and, where there is one, the old way in the same run.

Cached: this host's image cache (as root /var/cache/nestlab, or NESTLAB_CACHE) when
it holds both images of the current recipes; otherwise a stand-in cache as the
tests make (small qcow2, stand-in kernels), and the output says so. Nothing is
written to the cache. "old" is one image after the other (`up` before, and the
Makefile's two `image build` commands); "new" asks for both at once.

Disk: what `up` writes on L0 for each L1 at creation, as allocated bytes of the L1's
folder (goal <= 1 MiB): a lab of two L1s brought up with these images on libvirt's
test driver with FAKE L1s (no VM boots; the files on L0 are the real ones), and
the qcow2 overlay alone next to it.

From nothing (--from-nothing, about a minute of both cores, and it downloads
from this host's apt sources): both images built at the same time into a
temporary cache, each image's own time next to the wall time (goal <= 70 s).

    .venv/bin/python bench/images.py [RUNS] [--from-nothing]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from noop_up import lab_file  # noqa: E402
from reset import allocated, new_layer_bytes  # noqa: E402
from status import timed  # noqa: E402

from nestlab.build.images import (  # noqa: E402
    ConcurrentBuilds,
    build_image,
    find_image,
    images_root,
)
from tests.fakes.lab import bring_up, fake_home, fake_l1s, open_l0  # noqa: E402

NAMES = ("debian-12", "prime")
CACHED_GOAL = 1.0  # seconds, issue #13
BUILD_GOAL = 70.0  # seconds for both from nothing, issue #13
DISK_GOAL = 1024 * 1024  # bytes per extra L1 at creation, issue #13


def one_after_another() -> None:
    for name in NAMES:
        build_image(name)


def both_at_once() -> None:
    builds = ConcurrentBuilds(NAMES, lambda _name, _step: None)
    for name in NAMES:
        builds.result(name)


def cli(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "nestlab", *argv], check=True, capture_output=True)


def row(label: str, seconds: list[float], goal: float | None) -> str:
    median = statistics.median(seconds)
    verdict = "" if goal is None else ("met" if median <= goal else "missed")
    return (f"{label:<44} {median:8.3f}s {min(seconds):8.3f}s {max(seconds):8.3f}s "
            f"{len(seconds):>5}  {verdict}")


def cached_rows(runs: int) -> list[str]:
    return [
        row("up's images, old: one after the other", timed(one_after_another, runs), None),
        row("up's images, new: both at once", timed(both_at_once, runs), CACHED_GOAL),
        row("old CLI: image build debian-12; ... prime",
            timed(lambda: [cli("image", "build", n) for n in NAMES], runs), None),
        row("new CLI: image build debian-12 prime",
            timed(lambda: cli("image", "build", *NAMES), runs), CACHED_GOAL),
        row("floor: nestlab --help (CLI)", timed(lambda: cli("--help"), runs), None),
    ]


def l1_folders(work: Path, patch: pytest.MonkeyPatch) -> dict[str, int]:
    """Bytes each L1's folder on L0 allocates after `up` of a lab with two L1s, beyond the
    image cache's (a hard link to a cached file allocates nothing new)."""
    home = work / "home"
    patch.setenv("NESTLAB_HOME", str(home))
    _l0, really_close = open_l0(patch)
    fake_l1s(patch)
    try:
        bring_up(lab_file(work, "disks", 2, 1), home)
    finally:
        really_close()
    cached = {(f.stat().st_dev, f.stat().st_ino) for f in images_root().rglob("*")
              if f.is_file()}
    return {folder.name: sum(allocated(f) for f in folder.rglob("*") if f.is_file()
                             and (f.stat().st_dev, f.stat().st_ino) not in cached)
            for folder in sorted((home / "labs" / "disks" / "hosts").iterdir())}


def from_nothing() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="nestlab-images-") as cache:
        os.environ["NESTLAB_CACHE"] = cache
        started = time.perf_counter()
        builds = ConcurrentBuilds(NAMES, lambda name, step: print(
            f"  {time.perf_counter() - started:6.1f} s  {name}: {step}", flush=True))
        own = {name: builds.result(name)[0].seconds for name in NAMES}
        wall = time.perf_counter() - started
    lines = [row(f"{name} built (its own time, both at once)", [own[name]], None)
             for name in NAMES]
    return [*lines, row("both from nothing, at once (wall)", [wall], BUILD_GOAL)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=int, default=5)
    parser.add_argument("--from-nothing", action="store_true",
                        help="also build both images from nothing (minutes; downloads)")
    args = parser.parse_args()
    real = all(find_image(n) is not None for n in NAMES)
    with tempfile.TemporaryDirectory(prefix="nestlab-bench-") as work, \
            pytest.MonkeyPatch.context() as patch:
        if not real:
            fake_home(Path(work), patch)
        where = find_image(NAMES[0])
        assert where is not None
        print(f"images cached in {where.path.parent.parent} "
              f"({'this host' if real else 'a stand-in cache: no real images here'})\n")
        print(f"{'images':<44} {'median':>9} {'min':>9} {'max':>9} {'runs':>5}  "
              f"goal <= {CACHED_GOAL:.0f} s (cached)")
        for line in cached_rows(args.runs):
            print(line)
        assert where.disk is not None
        overlay = new_layer_bytes(where.disk, Path(work))
        print(f"\n{'disk on L0 per L1 at creation':<44} {'allocated':>9}  goal <= 1 MiB")
        print(f"{'the qcow2 overlay alone':<44} {overlay / 1024:>6.0f}KiB")
        for name, size in l1_folders(Path(work), patch).items():
            verdict = "met" if size <= DISK_GOAL else "missed"
            print(f"{'L1 ' + name + ': its folder after up':<44} {size / 1024:>6.0f}KiB  "
                  f"{verdict}")
    if args.from_nothing:
        print(f"\n{'from nothing':<44} {'seconds':>9}")
        for line in from_nothing():
            print(line)


if __name__ == "__main__":
    main()
