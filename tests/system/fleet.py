"""A fleet of libvirt hosts on one machine, made of network namespaces, for nestlab's nodes.

- a **controller** namespace, where nestlab runs (``Fleet.nestlab``), with its own view
  of root's home (``~/.ssh``: the fleet's key, the nodes' host keys) in a private
  /etc/passwd and $HOME, so that libvirt's
  ``ssh`` reaches ``qemu+ssh://root@NODE/system`` exactly as it would a real host;
- per **node**, nestlab's own sandbox (``nestlab.sandbox``: a namespace, virtlogd and
  libvirtd under the supervisor) plus an sshd (root login by the fleet's key) whose
  ``/run/libvirt`` is that libvirtd's socket folder, so ``virt-ssh-helper`` reaches it;
- a veth pair per node between the controller and the node, on a private subnet
  (10.251.K.0/24) that exists only in these namespaces: each end is created inside
  its namespace, never in the machine's own.

A node may get its own view of nestlab's data folders (``private_data``): the files
nestlab copies to it then land in the node's folder, as on another machine.
Everything is stopped by PID and the namespaces deleted by ``Fleet.close``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nestlab import sandbox
from nestlab.sandbox import Sandbox, start_daemons, supervisor_pid

SUBNET = "10.251"
NETNS_PREFIX = "nestlab-fleet-"
"""Every namespace of a fleet: its controller's, and its nodes' sandboxes (``nestlab.sandbox``
names a sandbox's namespace nestlab-LAB; a node's lab is fleet-NAME)."""
SSHD_CONFIG = """\
ListenAddress {address}
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
AcceptEnv none
"""
# sshd's own mount namespace: a private /run (its privilege-separation folder), with the
# node libvirtd's socket folder as /run/libvirt, where virt-ssh-helper looks.
SSHD_SHELL = ('mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/sshd /run/libvirt '
              '&& mount --bind "$1" /run/libvirt && shift && exec "$@"')
# The controller's: root's home is the fleet's, with its .ssh (OpenSSH takes it from
# the passwd entry, nestlab from $HOME); root's own home and ~/.ssh are never touched.
CONTROLLER_SHELL = 'mount --bind "$1" /etc/passwd && shift && exec "$@"'


@dataclass
class FleetNode:
    name: str
    index: int
    box: Sandbox
    folder: Path
    binds: tuple[tuple[Path, Path], ...] = ()
    sshd: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{SUBNET}.{self.index}.2"

    @property
    def uri(self) -> str:
        return f"qemu+ssh://root@{self.address}/system"

    def libvirtd_pids(self) -> list[int]:
        """The node's libvirtd and virtlogd, children of its supervisor (which is also
        the parent of the QEMU and dnsmasq processes libvirtd started: not these)."""
        pid = supervisor_pid(self.box)
        if pid is None:
            return []
        children = [int(c) for c in
                    Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        return [c for c in children if _comm(c) in ("libvirtd", "virtlogd")]


@dataclass
class Fleet:
    root: Path
    env: dict[str, str]
    controller: str = NETNS_PREFIX + "ctl"
    nodes: list[FleetNode] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "controller-home"

    # -- making it ----------------------------------------------------------------
    def start(self, names: list[str], private_data: set[str]) -> None:
        self.home.mkdir(parents=True, mode=0o700)
        self.env = {**self.env, "HOME": str(self.home)}
        passwd = Path("/etc/passwd").read_text().splitlines(keepends=True)
        (self.root / "passwd").write_text("".join(
            _with_home(line, self.home) if line.startswith("root:") else line
            for line in passwd))
        ssh = self.home / ".ssh"
        ssh.mkdir(mode=0o700)
        _keygen(ssh / "id_ed25519")
        _ip("netns", "add", self.controller)
        self.exec_in(self.controller, "ip", "link", "set", "lo", "up")
        known = []
        for index, name in enumerate(names, start=1):
            node = self._start_node(name, index, name in private_data)
            known.append(f"{node.address} {(node.folder / 'host_key.pub').read_text()}")
        (ssh / "known_hosts").write_text("".join(known))
        (ssh / "config").write_text("Host *\n  BatchMode yes\n  StrictHostKeyChecking yes\n")

    def _start_node(self, name: str, index: int, private_data: bool) -> FleetNode:
        folder = self.root / f"node-{name}"
        folder.mkdir(mode=0o700)
        binds: tuple[tuple[Path, Path], ...] = ()
        if private_data:
            binds = tuple((_made(folder / "data" / key.lower()), Path(self.env[key]))
                          for key in ("NESTLAB_HOME", "NESTLAB_CACHE"))
        node = FleetNode(name, index, Sandbox(f"fleet-{name}", folder / "sandbox"), folder,
                         binds)
        self.nodes.append(node)
        sandbox.start(node.box, binds)
        ctl_end, node_end = f"fl{index}c", f"fl{index}n"
        _ip("link", "add", ctl_end, "netns", self.controller, "type", "veth", "peer", "name",
            node_end, "netns", node.box.netns)
        self.exec_in(self.controller, "ip", "addr", "add", f"{SUBNET}.{index}.1/24", "dev",
                     ctl_end)
        self.exec_in(self.controller, "ip", "link", "set", ctl_end, "up")
        self.exec_in(node.box.netns, "ip", "addr", "add", f"{node.address}/24", "dev", node_end)
        self.exec_in(node.box.netns, "ip", "link", "set", node_end, "up")
        _keygen(folder / "host_key")
        authorized = folder / "authorized_keys"
        authorized.write_text((self.home / ".ssh" / "id_ed25519.pub").read_text())
        config = folder / "sshd_config"
        config.write_text(SSHD_CONFIG.format(address=node.address,
                                             host_key=folder / "host_key",
                                             authorized_keys=authorized))
        with (folder / "sshd.log").open("ab") as log:
            node.sshd = subprocess.Popen(
                ["ip", "netns", "exec", node.box.netns, "sh", "-c", SSHD_SHELL, "sh",
                 str(node.box.socket_path.parent), "/usr/sbin/sshd", "-D", "-e", "-f",
                 str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        _wait_port(self, node.address, 22)
        return node

    # -- using it -----------------------------------------------------------------
    def exec_in(self, netns: str, *argv: str) -> None:
        subprocess.run(["ip", "netns", "exec", netns, *argv], check=True, capture_output=True)

    def in_controller(self, *argv: str, timeout: float = 600,
                      check: bool = False) -> subprocess.CompletedProcess[str]:
        """A command in the controller namespace, with the fleet's home as root's."""
        result = subprocess.run(
            ["ip", "netns", "exec", self.controller, "sh", "-c", CONTROLLER_SHELL, "sh",
             str(self.root / "passwd"), *argv], env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False)
        if check:
            assert result.returncode == 0, f"{argv}: exit {result.returncode}\n" \
                                           f"{result.stdout}\n{result.stderr}"
        return result

    def nestlab(self, *args: str, timeout: float = 1200,
                check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.in_controller(sys.executable, "-m", "nestlab", *args, timeout=timeout,
                                  check=check)

    def python(self, code: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Python in the controller namespace (nestlab's library, as a command would)."""
        return self.in_controller(sys.executable, "-c", code, *args, check=True)

    def kill_libvirtd(self, node: FleetNode) -> None:
        """The node's libvirtd dies and stays dead: its supervisor first (it would start
        it again), then the daemons, all by PID."""
        daemons = node.libvirtd_pids()
        pid = supervisor_pid(node.box)
        assert pid is not None and daemons
        os.kill(pid, signal.SIGKILL)
        for daemon in daemons:
            os.kill(daemon, signal.SIGKILL)
        _reap(pid)
        for daemon in daemons:
            _wait_dead(daemon)

    def revive_libvirtd(self, node: FleetNode) -> None:
        """Start the node's daemons again in its namespace, as it was."""
        start_daemons(node.box, node.binds)

    # -- taking it away -----------------------------------------------------------
    def close(self) -> None:
        """Stop every process of the fleet by PID, delete its namespaces (their veths go
        with them)."""
        for node in self.nodes:
            if node.sshd is not None and node.sshd.poll() is None:
                node.sshd.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.sshd.wait(10)
                if node.sshd.poll() is None:
                    node.sshd.kill()
                    node.sshd.wait(10)
            sandbox.stop(node.box)  # the supervisor, then whatever is left in the namespace
        if Path("/run/netns", self.controller).exists():
            _ip("netns", "del", self.controller)


def netns_names() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def leftovers(root: Path) -> list[str]:
    """What a fleet under ``root`` left on the machine: its namespaces, processes that
    name its folder, its veths in the machine's own namespace (they never belong there).
    Namespaces others make meanwhile (other labs' sandboxes) are not the fleet's."""
    found = [f"namespace {name}" for name in netns_names() if name.startswith(NETNS_PREFIX)]
    processes = subprocess.run(["pgrep", "-af", str(root)], capture_output=True, text=True,
                               check=False).stdout
    found += [f"process {line}" for line in processes.splitlines()]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True,
                           check=True).stdout
    found += [f"link {name}" for name in re.findall(r"^\d+: (fl\d+[cn])[@:]", links, re.M)]
    return found


def _with_home(entry: str, home: Path) -> str:
    fields = entry.rstrip("\n").split(":")
    fields[5] = str(home)
    return ":".join(fields) + "\n"


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


def _keygen(path: Path) -> None:
    """An ed25519 key pair (0600 private half); no passphrase, none on a command line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nestlab-fleet",
                    "-f", str(path)], check=True, capture_output=True)
    path.chmod(0o600)


def _made(path: Path) -> Path:
    path.mkdir(parents=True, mode=0o700, exist_ok=True)
    return path


def _wait_port(fleet: Fleet, host: str, port: int, timeout: float = 30.0) -> None:
    """Until ``host:port`` accepts a connection made from the controller namespace."""
    deadline = time.monotonic() + timeout
    while True:
        probe = fleet.in_controller(sys.executable, "-c",
                                    "import socket, sys; socket.create_connection("
                                    "(sys.argv[1], int(sys.argv[2])), timeout=2).close()",
                                    host, str(port))
        if probe.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{host}:{port} did not answer in {timeout:.0f}s: "
                                 f"{probe.stderr[-500:]}")
        time.sleep(0.3)


def _reap(pid: int) -> None:
    """The supervisor is the fleet's child (through ip netns exec, which execs it)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _wait_dead(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status")
        with contextlib.suppress(OSError):
            if "State:\tZ" in status.read_text():
                return  # a zombie of the killed supervisor's: init reaps it
        time.sleep(0.05)
