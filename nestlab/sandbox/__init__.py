"""A private libvirtd in a network namespace of its own (``nestlab up --sandbox``).

Bridges, dnsmasq, the guests and every connection to them stay inside the
namespace; libvirt's state, logs and definitions live in the lab's folder, so
nothing touches the host's libvirt. See shared/reference/nested-ci-recipe.md.

The daemons run under ``nestlab.sandbox.supervisor`` (its own session), which reaps
them and stops them when it is signalled; ``stop`` then sweeps whatever is
left in the namespace and deletes it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from nestlab import programs
from nestlab.errors import NestlabError
from nestlab.programs import Need
from nestlab.state.paths import cache_root
from nestlab.waiting import NotYet, WaitTimedOut, wait_for

CLONE_NEWNET = 0x40000000
_READY_TIMEOUT = 60.0


class SandboxError(NestlabError):
    """The sandbox could not be started, reached or stopped."""


@dataclass(frozen=True)
class Sandbox:
    """Where a lab's private libvirtd lives."""

    lab: str
    root: Path

    @property
    def netns(self) -> str:
        return f"nestlab-{self.lab}"

    @property
    def socket_path(self) -> Path:
        return self.root / "run" / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.socket_path}"

    @property
    def pid_file(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "log" / "libvirtd.log"


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def supervisor_pid(box: Sandbox) -> int | None:
    """The supervisor's PID if it is alive (a zombie counts as gone) and still this
    sandbox's supervisor: a PID reused by another process is never signalled."""
    try:
        pid = int(box.pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    ours = b"nestlab.sandbox.supervisor" in cmdline and str(box.root).encode() in cmdline
    return pid if ours and _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")),
                 "")
    return state not in ("Z", "X")


def is_running(box: Sandbox) -> bool:
    return netns_exists(box.netns) and supervisor_pid(box) is not None


def start(box: Sandbox, binds: tuple[tuple[Path, Path], ...] = ()) -> bool:
    """Create the namespace and start virtlogd + libvirtd in it; False when it ran already.
    ``binds`` (source, target): more folders the daemons see in place of the host's (a test
    fleet's node gets its own view of nestlab's data this way)."""
    if os.geteuid() != 0:
        raise SandboxError("--sandbox needs root (network namespaces, a private libvirtd)",
                           hint="Run it with sudo.")
    # What every `up` needs (QEMU, dnsmasq) is the host check's, which runs before this.
    lacking = programs.missing(Need.SANDBOX)
    if lacking:
        raise SandboxError(f"--sandbox needs {', '.join(p.name for p in lacking)}",
                           hint=programs.install_command(lacking))
    if is_running(box) and _answers_soon(box):
        return False
    # Clear what a crashed run left: a namespace without daemons, or the reverse, or
    # daemons that no longer answer (their guests go with them; `up` starts them again).
    stop(box)
    for sub in ("run", "log", "etc", "lib", "dev"):
        (box.root / sub).mkdir(parents=True, exist_ok=True)
    box.root.chmod(0o700)
    _write_config(box)
    subprocess.run(["ip", "netns", "add", box.netns], check=True, capture_output=True)
    subprocess.run(["ip", "netns", "exec", box.netns, "ip", "link", "set", "lo", "up"],
                   check=True, capture_output=True)
    start_daemons(box, binds)
    return True


def start_daemons(box: Sandbox, binds: tuple[tuple[Path, Path], ...] = ()) -> None:
    """Start the supervisor and its daemons in the sandbox's namespace, which exists (after
    ``start`` made it, or when its daemons were killed) and wait until libvirtd answers."""
    with (box.root / "log" / "supervisor.log").open("ab") as log:
        cache = cache_root() / "libvirt-cache"
        cache.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", box.netns, sys.executable, "-m", "nestlab.sandbox.supervisor",
             str(box.root), str(cache), *(f"{source}={target}" for source, target in binds)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
    box.pid_file.write_text(f"{proc.pid}\n")
    _wait_ready(box, proc)


def _answers_soon(box: Sandbox, timeout: float = 30.0) -> bool:
    """Whether the running sandbox's libvirtd answers (the supervisor restarts one that
    died within a second or two)."""
    import libvirt

    def answers() -> bool:
        libvirt.open(box.uri).close()
        return True

    try:
        wait_for(answers, timeout=timeout, interval=0.5, what="the sandbox's libvirtd",
                 retry_on=(libvirt.libvirtError,))
    except WaitTimedOut:
        return False
    return True


def _write_config(box: Sandbox) -> None:
    etc = box.root / "etc"
    if not (etc / "qemu.conf").exists():
        shutil.copytree("/etc/libvirt", etc, dirs_exist_ok=True, symlinks=True)
        for autostart in etc.glob("qemu/networks/autostart/*"):
            autostart.unlink()  # the host's default network is not the lab's
    (etc / "libvirtd.conf").write_text(
        f'unix_sock_dir = "{box.socket_path.parent}"\n'
        'unix_sock_rw_perms = "0700"\n'
        'auth_unix_ro = "none"\n'
        'auth_unix_rw = "none"\n'
        f'log_outputs = "3:file:{box.log_file}"\n'
    )
    # QEMU runs as root inside the sandbox and labels nothing: libvirt would otherwise
    # chown the cached base images to its QEMU user and leave them so (recipe, pitfall 6).
    (etc / "qemu.conf").write_text(
        'user = "root"\ngroup = "root"\ndynamic_ownership = 0\nsecurity_driver = "none"\n'
    )


def _wait_ready(box: Sandbox, proc: subprocess.Popen[bytes]) -> None:
    import libvirt

    def answers() -> bool:
        if proc.poll() is not None:
            raise SandboxError("the sandbox's supervisor exited")
        if not box.socket_path.exists():
            raise NotYet("no socket yet")
        libvirt.open(box.uri).close()
        return True

    try:
        wait_for(answers, timeout=_READY_TIMEOUT, interval=0.2,
                 what="the sandbox's libvirtd", retry_on=(libvirt.libvirtError,))
    except NestlabError as exc:
        log = box.root / "log" / "supervisor.log"
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        stop(box)
        raise SandboxError(f"the sandbox's libvirtd did not come up: {exc.message}\n{tail}",
                           hint=f"See {box.log_file}.") from None


def stop(box: Sandbox, timeout: float = 20.0) -> None:
    """Stop the daemons and everything else in the namespace, then delete it."""
    pid = supervisor_pid(box)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        _wait_gone([pid], timeout)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    if netns_exists(box.netns):
        leftover = _netns_pids(box.netns)
        for other in leftover:
            _signal(other, signal.SIGTERM)
        _wait_gone(leftover, timeout)
        for other in leftover:
            _signal(other, signal.SIGKILL)
        _wait_gone(leftover, 5.0)
        subprocess.run(["ip", "netns", "del", box.netns], check=False, capture_output=True)
    box.pid_file.unlink(missing_ok=True)
    box.socket_path.unlink(missing_ok=True)


def _netns_pids(name: str) -> list[int]:
    result = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                            check=False)
    return [int(p) for p in result.stdout.split() if p.isdigit()]


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone: what we want
        os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Wait until none of ``pids`` is alive, or ``timeout`` passes (then just return)."""
    with contextlib.suppress(WaitTimedOut):
        wait_for(lambda: True if not any(_alive(p) for p in pids) else None,
                 timeout=timeout, interval=0.1, what="processes to end")


def enter_netns(netns: str) -> None:
    """Move the calling thread (only it: setns is per thread) into a network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{netns}", "rb") as handle:
        if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {netns}: {os.strerror(err)}")


def open_socket(netns: str | None, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection made from inside ``netns`` (or this namespace when None).

    A socket keeps the namespace it was created in, so a short-lived thread
    enters the namespace (setns is per thread), connects, and hands it back.
    """
    if netns is None:
        return socket.create_connection((host, port), timeout=timeout)
    result: list[socket.socket | BaseException] = []

    def connect() -> None:
        try:
            enter_netns(netns)
            result.append(socket.create_connection((host, port), timeout=timeout))
        except BaseException as exc:  # handed to the caller's thread below
            result.append(exc)

    thread = threading.Thread(target=connect, name=f"netns-{netns}")
    thread.start()
    thread.join()
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
