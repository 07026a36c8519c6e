"""The sandbox's supervisor: run as ``ip netns exec NS python -m nestlab.sandbox.supervisor
ROOT CACHE [SOURCE=TARGET...]``.

Inside the namespace's private mount namespace it mounts libvirt's state
folders from the lab's sandbox folder, starts virtlogd and libvirtd as its
children, and stays their parent: it is a child subreaper, so the QEMU and
dnsmasq processes libvirt double-forks are reaped here rather than left as
zombies under a PID 1 that may not reap (recipe, pitfall 6). A daemon that
dies is started again (its guests keep running: QEMU is the supervisor's, not
libvirtd's, and libvirtd finds them again in /run/libvirt); SIGTERM stops the
daemons and then the supervisor.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def prepare_mounts(root: Path, cache: Path, binds: Sequence[tuple[str, str]] = ()) -> None:
    """Private views of libvirt's folders (and of each ``binds`` target, its source in its
    place); the host's stay untouched."""
    _mount("--make-rslave", "/")
    for folder in ("/run/libvirt", "/etc/libvirt", "/var/lib/libvirt", "/var/log/libvirt",
                   "/var/cache/libvirt"):
        os.makedirs(folder, exist_ok=True)
    _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run/libvirt")
    _mount("--bind", str(root / "etc"), "/etc/libvirt")
    _mount("--bind", str(root / "lib"), "/var/lib/libvirt")
    _mount("--bind", str(root / "log"), "/var/log/libvirt")
    _mount("--bind", str(cache), "/var/cache/libvirt")
    if os.path.exists("/dev/kvm"):
        # libvirt's probe sees the host's root-only /dev/kvm as KVM, then finds it unusable
        # as the QEMU user and probes again on every lookup (~3 s each). A namespace-local
        # node with Debian's usual root:kvm 0660 gives it one consistent answer (recipe,
        # pitfall 1). The host's own node is never changed.
        node = root / "dev" / "kvm"
        if not node.exists():
            os.mknod(node, 0o660 | 0o020000, os.makedev(10, 232))
        # Without a kvm group, root-only is still one consistent answer.
        with contextlib.suppress(KeyError):
            os.chown(node, 0, grp.getgrnam("kvm").gr_gid)
        node.chmod(0o660)
        _mount("--bind", str(node), "/dev/kvm")
    for source, target in binds:
        _mount("--bind", source, target)


# Their pid files in the private /run/libvirt, not /run: two sandboxes can then run at
# once (each daemon refuses to start while another holds its pid file).
VIRTLOGD_ARGV = ["virtlogd", "--pid-file", "/run/libvirt/virtlogd.pid"]
LIBVIRTD_ARGV = ["libvirtd", "--pid-file", "/run/libvirt/libvirtd.pid"]
DAEMONS = {"virtlogd": VIRTLOGD_ARGV, "libvirtd": LIBVIRTD_ARGV}
MAX_RESTARTS = 5
"""Restarts of dead daemons allowed within ``RESTART_WINDOW`` seconds before giving up."""
RESTART_WINDOW = 60.0


def supervise(commands: dict[str, list[str]]) -> int:
    """Run the daemons and keep them running: one that dies is started again (at most
    ``MAX_RESTARTS`` times a minute; then every daemon is stopped and the supervisor ends,
    so that nestlab sees a sandbox that is not running and starts it afresh). SIGTERM
    stops the daemons, then the supervisor. Returns the exit status for the process."""
    daemons = {name: subprocess.Popen(argv) for name, argv in commands.items()}
    restarts: list[float] = []
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in daemons.values():
            if proc.poll() is None:
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0  # nothing left to reap
        except InterruptedError:
            continue
        name = next((n for n, proc in daemons.items() if proc.pid == pid), None)
        if name is None:
            continue  # a QEMU or dnsmasq that libvirt double-forked, reaped here
        daemons[name].returncode = os.waitstatus_to_exitcode(status)
        if stopping:
            if all(proc.returncode is not None for proc in daemons.values()):
                return 0
            continue
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < RESTART_WINDOW] + [now]
        if len(restarts) > MAX_RESTARTS:
            print(f"nestlab supervisor: {name} died {len(restarts)} times within "
                  f"{RESTART_WINDOW:.0f}s; stopping the sandbox", file=sys.stderr, flush=True)
            stop(signal.SIGTERM, None)
            continue
        print(f"nestlab supervisor: {name} exited ({daemons[name].returncode}); starting it "
              "again", file=sys.stderr, flush=True)
        daemons[name] = subprocess.Popen(commands[name])


def main() -> None:
    root, cache = Path(sys.argv[1]), Path(sys.argv[2])
    binds = [(source, target) for source, _, target in (a.partition("=") for a in sys.argv[3:])]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    prepare_mounts(root, cache, binds)
    sys.exit(supervise(DAEMONS))


if __name__ == "__main__":
    main()
