"""Benchmark: how much nested KVM buys an L2, against emulation as the baseline.

Brings up examples/linux-nested.yaml in a sandbox (root), then inside its L1
boots the prime L2 image directly with QEMU, RUNS times each with
`-accel kvm` (nested KVM, what nestlab uses) and `-accel tcg` (emulation
inside the emulated L1: the baseline), timing each boot to the prime's
"nestlab-prime: up" marker on its serial console. Prints both side by side
and takes the lab down. No network: the L2s get no NIC.

    sudo .venv/bin/python bench/l2_boot.py [RUNS]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB_FILE = REPO / "examples" / "linux-nested.yaml"

# Runs inside the L1: boot the prime once, print the milliseconds to its marker.
BOOT_ONCE = r"""
set -eu
accel="$1"
images=/var/lib/nestlab/images/prime
log=$(mktemp)
start=$(date +%s%N)
qemu-system-x86_64 -accel "$accel" -m 256 -nographic -nic none -no-reboot \
  -kernel "$images/vmlinuz" -initrd "$images/initrd.img" \
  -append "console=ttyS0 quiet nestlab.hostname=bench" > "$log" 2>&1 &
pid=$!
while ! grep -q 'nestlab-prime: up' "$log"; do
  if ! kill -0 "$pid" 2>/dev/null; then echo "qemu exited" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.1
done
end=$(date +%s%N)
kill "$pid"; wait "$pid" 2>/dev/null || true
rm -f "$log"
echo $(( (end - start) / 1000000 ))
"""


def nestlab(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "nestlab", *args], env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"nestlab {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    home = tempfile.mkdtemp(prefix="nestlab-bench-")
    env = {**os.environ, "NESTLAB_HOME": home}
    up = json.loads(nestlab(env, "up", "--sandbox", "-f", str(LAB_FILE), "--json"))
    print(f"lab up in {up['seconds']:.0f}s; booting the prime in the L1, {runs} runs each")
    try:
        timings: dict[str, list[float]] = {"kvm": [], "tcg": []}
        for _ in range(runs):
            for accel in timings:
                out = nestlab(env, "exec", "-f", str(LAB_FILE), "kvm1", "--", "sh", "-c",
                              BOOT_ONCE, "boot-once", accel)
                timings[accel].append(int(out.strip()) / 1000)
        print(f"\n{'L2 boot to marker':<34}{'median':>8}{'min':>8}{'max':>8}  runs")
        labels = {"kvm": "nested KVM (nestlab)", "tcg": "emulation in L1 (baseline)"}
        for accel, values in timings.items():
            print(f"{labels[accel]:<34}{statistics.median(values):>7.1f}s"
                  f"{min(values):>7.1f}s{max(values):>7.1f}s  {len(values)}")
        ratio = statistics.median(timings["tcg"]) / statistics.median(timings["kvm"])
        print(f"\nnested KVM boots the L2 {ratio:.1f}x faster than emulation")
    finally:
        nestlab(env, "down", "-f", str(LAB_FILE), "--purge")


if __name__ == "__main__":
    main()
