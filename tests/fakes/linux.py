"""FAKE Linux L1 and L2 sessions for tests of nestlab's own logic without a VM.

The real ones (an L1 booted under QEMU, sshd, libvirt inside it) run in the
system tests; these let up, down, status and provision/linux run as plain
tests. What they copy from the real thing, and where:

- ``FakeLinuxL1`` answers exactly the commands provision/linux sends. A
  command it does not know fails the test (a real L1 would not silently
  accept a new command either), and ``virsh`` fails like virsh does when
  libvirtd is not running ("failed to connect to the hypervisor").
- Its libvirt is a real one: libvirt's test driver, loaded from the project's
  own ``tests/integration/testdriver.xml``, so the L2 network and domain XML
  nestlab renders are defined (and validated) as in a real L1, and a bad
  document fails here as it would there.
- Several virsh commands in one argument (``a; b``) run as virsh runs them.
- ``virsh net-info``, ``domstate``, ``list --all`` and ``net-list --all`` print what virsh 9.0
  prints ("Active: yes", "running", "shut off", "paused", the padded table;
  pinned against the real virsh in tests/integration/test_fake_linux_l1.py).
- ``put`` needs the target's folder, as SFTP does.
- ``FakePrime`` (an L2) answers SSH only while its domain runs in the fake
  L1's libvirt, as a real prime does.
- Given ``booted_from`` (what runs the L1 on L0: its disk and its domain's
  boot), the L1 answers only while it runs, and a new boot is seen as one:
  its L2s are shut off after it (nestlab defines them without autostart;
  libvirt starts only autostart domains at boot), and a boot from another
  disk is a new L1 (nothing of the old one's files or domains is left).
- ``tail -c N`` prints the file's last N bytes, as coreutils does.
- What lives on the L1's disk (its files and folders, its libvirt's networks and
  domains, and the files its L2s write, whose disks are inside the L1's) is
  kept per disk layer, keyed by the layer file's identity (inode and mtime;
  ``booted_from`` gives the chain of layers, top first). Booting a new top on
  a layer it knows is booting what that layer held when the L1 last ran on it
  (nestlab freezes a layer only with the L1 off): autostart networks active,
  L2s off, no routes. A chain it knows nothing of is a new L1. L2s still running
  in a layer that was frozen (the L1 stopped under them) are recorded in
  ``torn``: a real L2 could lose what it had not written.
- Its memory can be kept: when L0 saves the L1's domain (``memory_saved``), what
  the L1 holds then (files, its libvirt's domains as they run or are paused,
  routes, clock) is kept by the save file's name; when L0 restores that file
  (``memory_restored``), the next time the L1 answers it is that state again, its
  L2s running or paused as they were (no boot: nothing is torn, no L2 is off).
- Its watch for an L2's announcement on the L2's console log answers at once:
  announced when the L2 whose domain logs to that file runs, else the watch's
  timeout (124) without waiting it.
- ``date -u -s @N`` sets its clock (``clock``), and an L2's (``l2_clocks``); a
  paused L2 answers nothing, as a paused VM does not.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import libvirt

from nestlab.provision.linux import QEMU_PROBE, UNPACK_KERNEL
from nestlab.transport.base import CommandResult, Transport, TransportError, Unreachable
from nestlab.waiting import NotYet, WaitTimedOut, wait_for

TESTDRIVER = Path(__file__).resolve().parent.parent / "integration" / "testdriver.xml"
_STATES = {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
           libvirt.VIR_DOMAIN_SHUTOFF: "shut off"}


def qemu_caps_of(cpus: int) -> bytes:
    """The probe a FAKE L1 of ``cpus`` vCPUs writes: as a real one's, it holds the CPU's
    CPUID, whose topology leaves follow the vCPU count (logical processors in leaf 1), and
    flags for what its QEMU can do, among them that it reports unavailable CPU features."""
    return (b"<qemuCaps>\n  <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
            b"  <flag name='kvm'/>\n  <flag name='cpu-unavailable-features'/>\n"
            b"  <cpudata arch='x86'><cpuid eax_in='0x00000001' logical='%d'/></cpudata>\n"
            b"</qemuCaps>\n" % cpus)


def _checked_part(probe: bytes) -> list[bytes]:
    """What libvirt compares when it decides whether a probe fits: everything but the
    flags it recorded (it checks QEMU's, libvirtd's and the kernel's versions and the CPU,
    and trusts the flags)."""
    return [line for line in probe.splitlines() if not line.strip().startswith(b"<flag ")]


@dataclass
class FakeLinuxL1(Transport):
    name: str = "kvm1"
    kvm: bool = True
    nested: str = "1"
    libvirtd_active: bool = False
    reachable: bool = True
    """False: the L1 never answers SSH (``wait_until_reachable`` raises ``Unreachable``
    when its time is up, as ``SSHTransport`` does, or ``Cancelled``)."""
    files: dict[str, bytes] = field(default_factory=dict)
    folders: set[str] = field(default_factory=lambda: {"/", "/var", "/var/lib"})
    calls: list[str] = field(default_factory=list)
    routes: dict[str, str] = field(default_factory=dict)
    """The L1's routes by destination, as `ip route` shows them."""
    conn: libvirt.virConnect = field(default=None)  # type: ignore[assignment]
    connected: int = 0
    booted_from: Callable[[], tuple[object, object] | None] | None = None
    """(disk, boot) of the L1's domain on L0 while it runs, None while it does not; None
    instead of a function: always running, never rebooted."""
    boots: list[tuple[object, object]] = field(default_factory=list)
    """Each boot the L1 was seen answering from."""
    latency: float = 0.0
    """Seconds that connecting and each round trip take, as over a real network (0: none)."""
    command_seconds: float = 0.0
    """Seconds each command takes inside the L1 besides the round trip (0: none): a batch
    of commands (``run_batch``, one shell) pays the round trip once and this for each."""
    batches: list[list[str]] = field(default_factory=list)
    """The commands of each ``run_batch`` (one round trip each), as ``calls`` has them."""
    visits: list[tuple[float, float]] = field(default_factory=list)
    """(connect began, session closed) per session, in ``time.monotonic()`` seconds."""
    ignores_acpi: set[str] = field(default_factory=set)
    """L2 domains that do not shut down when `virsh shutdown` asks (no ACPI in them)."""
    l2_files: dict[str, set[str]] = field(default_factory=dict)
    """Files each L2 (by domain) wrote on its disk, which lives on the L1's."""
    layers: dict[object, _DiskState] = field(default_factory=dict)
    """What each disk layer the L1 ran on held when it last ran on it."""
    torn: list[tuple[object, list[str]]] = field(default_factory=list)
    """(layer, L2 domains that ran when the L1 stopped on it) per booted copy of a layer."""
    clock: int | None = None
    """What `date -s` last set the L1's clock to (Unix seconds)."""
    l2_clocks: dict[str, int] = field(default_factory=dict)
    saved: dict[str, _DiskState] = field(default_factory=dict)
    """What the L1 held when L0 saved its memory, by save file."""
    restored_from: list[str] = field(default_factory=list)
    """Each save file L0 restored the L1 from."""
    cpus: int = 1
    """The L1's vCPUs (its domain's <vcpu>)."""
    probes: int = 0
    """How often its libvirt probed QEMU: at a define, when its record of the probe
    (QEMU_PROBE) is missing or does not fit ``qemu_caps`` (``_checked_part``)."""
    written: dict[str, int] = field(default_factory=dict)
    """When each file was last written (``tick``); a file a test put into ``files`` itself
    was written at 0."""
    _clock: int = field(default=1_700_000_000, repr=False)
    cpu_reads: list[tuple[str, str]] = field(default_factory=list)
    """(domain, how libvirt read its CPU) per start: "per feature" (a QMP `qom-get` for
    each of ~400 properties) where the probe in use records that QEMU reports unavailable
    features, else "feature words" (two)."""
    _restoring: _DiskState | None = field(default=None, repr=False)
    _began: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        self.conn = libvirt.open(f"test://{TESTDRIVER}")

    # -- the Transport interface ---------------------------------------------------------
    def wait_until_reachable(self, timeout: float, waiting: Callable[[str], None] | None = None,
                             cancel: threading.Event | None = None) -> None:
        def answers() -> bool:
            if not self.reachable:
                raise NotYet("Connection refused (fake)")
            self._follow_boot()
            return True

        self._began = time.monotonic()
        time.sleep(self.latency)
        try:
            wait_for(answers, timeout=timeout, interval=0.05, what=f"{self.name}: SSH",
                     cancel=cancel, progress=waiting)
        except WaitTimedOut as exc:  # as SSHTransport: a transport fails with its own error
            raise Unreachable(exc.message, hint=exc.hint) from None
        self.connected += 1

    def reconnect(self, timeout: float) -> None:
        self.wait_until_reachable(timeout)

    def close(self) -> None:
        if self._began is not None:
            self.visits.append((self._began, time.monotonic()))
            self._began = None

    def put(self, local: Path, remote: str) -> None:
        self._write(remote, local.read_bytes())

    def put_text(self, text: str, remote: str, mode: int = 0o644) -> None:
        self._write(remote, text.encode())

    def run(self, argv: list[str], timeout: float = 600.0) -> CommandResult:
        command = shlex.join(argv)
        self.calls.append(command)
        time.sleep(self.latency + self.command_seconds)
        status, out, err = self._answer(argv)
        return CommandResult(command, status, out, err)

    def run_batch(self, argvs: Sequence[list[str]], timeout: float = 600.0
                  ) -> list[CommandResult]:
        """As SSHTransport's: one round trip, each command answered as by ``run``."""
        self.batches.append([shlex.join(argv) for argv in argvs])
        time.sleep(self.latency + self.command_seconds * len(argvs))
        self.calls += self.batches[-1]
        return [CommandResult(shlex.join(argv), *self._answer(argv)) for argv in argvs]

    # -- the model -----------------------------------------------------------------------
    def memory_saved(self, path: Path) -> None:
        """L0 saved the L1's domain into ``path`` (it is off now)."""
        self.saved[str(path)] = self._state().restored_copy()

    def memory_restored(self, path: Path) -> None:
        """L0 restored the L1's domain from ``path``: it runs that state again."""
        self.restored_from.append(str(path))
        self._restoring = self.saved[str(path)].restored_copy()

    def _follow_boot(self) -> None:
        if self.booted_from is None:
            return
        now = self.booted_from()
        if now is None:
            raise NotYet("No route to host: its domain on L0 is not running (fake)")
        if self._restoring is not None and self.boots and now != self.boots[-1]:
            self.layers[_top(self.boots[-1][0])] = self._state()
            self._load(self._restoring)
            self._restoring = None
        elif self.boots and now[0] != self.boots[-1][0]:
            self._boot_disk(now[0])
        elif self.boots and now[1] != self.boots[-1][1]:
            self._booted_again()
        if not self.boots or now != self.boots[-1]:
            self.boots.append(now)

    def _booted_again(self) -> None:
        """Domains that are not autostart stay off after the L1 boots (nestlab's L2s)."""
        for dom in self.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            dom.destroy()

    def _new_disk(self) -> None:
        """A fresh L1 from the base image: no L2 files, networks or domains yet."""
        self._load(_DiskState(libvirt.open(f"test://{TESTDRIVER}")))

    def _boot_disk(self, chain: object) -> None:
        """The L1 booted another disk: keep what the one it left holds, then boot what the
        new one's nearest known layer holds (or a new L1)."""
        left = self.boots[-1][0]
        self.layers[_top(left)] = self._state()
        layers = chain if isinstance(chain, tuple) else (chain,)
        known = next((layer for layer in layers if layer in self.layers), None)
        if known is None:
            self._new_disk()
            return
        frozen = self.layers[known]
        running = [d.name() for d in frozen.conn.listAllDomains(
            libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)]
        if running:
            self.torn.append((known, running))
        if known == layers[0]:
            self._load(frozen)
            self._booted_again()
        else:
            self._load(frozen.booted_copy())

    def _state(self) -> _DiskState:
        return _DiskState(self.conn, self.files, self.folders, self.libvirtd_active,
                          self.routes, self.l2_files, self.clock, self.l2_clocks)

    def _load(self, state: _DiskState) -> None:
        self.conn, self.files, self.folders = state.conn, state.files, state.folders
        self.libvirtd_active, self.routes, self.l2_files = (state.libvirtd_active, state.routes,
                                                            state.l2_files)
        self.clock, self.l2_clocks = state.clock, state.l2_clocks

    def _write(self, remote: str, data: bytes) -> None:
        parent = str(PurePosixPath(remote).parent)
        if parent not in self.folders:
            raise TransportError(f"{self.name}: sftp put {remote}: No such file (fake: no "
                                 f"folder {parent})")
        self.calls.append(f"put {remote}")
        self.files[remote] = data
        self.written[remote] = self.tick()

    def tick(self) -> int:
        """The L1's clock, in whole seconds as `stat -c %Y` shows them: one more at each
        write, so that a later write has a later time."""
        self._clock += 1
        return self._clock

    def _answer(self, argv: list[str]) -> tuple[int, str, str]:
        match argv:
            case ["sh", "-c", line]:  # a command line (the pytest plugin's shell)
                return self._answer(shlex.split(line))
            case ["test", "-c", "/dev/kvm"]:
                return (0 if self.kvm else 1), "", ""
            case ["cat", path] if path.startswith("/sys/module/"):
                module = path.split("/")[3]
                if module == "kvm_amd" and self.kvm:
                    return 0, self.nested + "\n", ""
                return 1, "", f"cat: {path}: No such file or directory\n"
            case ["systemctl", "start", "libvirtd"]:
                self.libvirtd_active = True
                return 0, "", ""
            case ["mkdir", "-p", path]:
                parts = PurePosixPath(path).parts
                for end in range(1, len(parts) + 1):
                    self.folders.add(str(PurePosixPath(*parts[:end])))
                return 0, "", ""
            case ["test", "-e", path]:
                return (0 if path in self.files or path in self.folders else 1), "", ""
            case ["test", "-s", path]:
                return (0 if self.files.get(path) else 1), "", ""
            case ["test", "-d", path]:
                return (0 if path in self.folders else 1), "", ""
            case ["stat", "-c", "%Y %n", *paths]:  # GNU stat: the missing ones on stderr
                there = [p for p in paths if p in self.files]
                return ((0 if len(there) == len(paths) else 1),
                        "".join(f"{self.written.get(p, 0)} {p}\n" for p in there),
                        "".join(f"stat: cannot statx '{p}': No such file or directory\n"
                                for p in paths if p not in self.files))
            case ["cat", path] if path.startswith(("/var/", "/etc/")):
                if path not in self.files:
                    return 1, "", f"cat: {path}: No such file or directory\n"
                return 0, self.files[path].decode(), ""
            case ["sha256sum", path]:
                if path not in self.files:
                    return 1, "", f"sha256sum: {path}: No such file or directory\n"
                return 0, f"{hashlib.sha256(self.files[path]).hexdigest()}  {path}\n", ""
            case ["qemu-img", "create", "-q", "-f", "qcow2", path, size]:
                self._write(path, f"qcow2 {size}".encode())
                return 0, "", ""
            case ["ip", "-4", "route", "show", cidr]:
                via = self.routes.get(cidr)
                return 0, (f"{cidr} via {via} dev enp1s0 \n" if via else ""), ""
            case ["ip", "-4", "route", "replace", cidr, "via", via]:
                self.routes[cidr] = via
                return 0, "", ""
            case ["touch", path]:
                if str(PurePosixPath(path).parent) not in self.folders:
                    return 1, "", f"touch: cannot touch '{path}': No such file or directory\n"
                self.files.setdefault(path, b"")
                return 0, "", ""
            case ["sync"]:
                return 0, "", ""
            case ["date", "-u", "-s", stamp] if stamp.startswith("@"):
                self.clock = int(stamp[1:])
                return 0, "", ""
            case ["sh", "-c", script, "unpack", zst, kernel] if script == UNPACK_KERNEL:
                return self._unpack_kernel(zst, kernel)
            case ["timeout", seconds, "sh", "-c", script, "await", log, line]:
                return self._await_announcement(script, int(seconds), log, line)
            case ["rm", "-f", path]:
                self.files.pop(path, None)
                return 0, "", ""
            case ["tail", "-c", count, path]:
                if path not in self.files:
                    return 1, "", f"tail: cannot open '{path}' for reading: No such file or " \
                                  "directory\n"
                return 0, self.files[path][-int(count):].decode(errors="replace"), ""
            case ["virsh", "-c", "qemu:///system", *args]:
                if not self.libvirtd_active:
                    return 1, "", "error: failed to connect to the hypervisor\n"
                return self._virsh(args)
        raise AssertionError(f"FakeLinuxL1 does not know `{shlex.join(argv)}`; teach it what "
                             "the real L1 answers")

    @property
    def qemu_caps(self) -> bytes:
        """What this L1's libvirt writes when it probes its QEMU (its QEMU, kernel and CPU)."""
        return qemu_caps_of(self.cpus)

    def _probe_qemu(self) -> None:
        have = self.files.get(QEMU_PROBE)
        if have is None or _checked_part(have) != _checked_part(self.qemu_caps):
            self.probes += 1
            self._answer(["mkdir", "-p", str(PurePosixPath(QEMU_PROBE).parent)])
            self._write(QEMU_PROBE, self.qemu_caps)

    def _unpack_kernel(self, zst: str, kernel: str) -> tuple[int, str, str]:
        """What the L1's sh runs: real zstd on the copy's bytes (a damaged copy fails as it
        would there), then the two renames."""
        if f"{zst}.new" not in self.files:
            return 1, "", f"zstd: {zst}.new: No such file or directory\n"
        unpacked = subprocess.run(["zstd", "-d", "-q", "-c"], input=self.files[f"{zst}.new"],
                                  capture_output=True, check=False)
        if unpacked.returncode != 0:
            return 1, "", unpacked.stderr.decode(errors="replace")
        self._write(kernel, unpacked.stdout)
        self.files[zst] = self.files.pop(f"{zst}.new")
        self.written[zst] = self.written.pop(f"{zst}.new")  # mv keeps the time
        return 0, "", ""

    def _await_announcement(self, script: str, seconds: int, log: str,
                            line: str) -> tuple[int, str, str]:
        """The console watch: at once 0 when the L2 whose domain logs its console to
        ``log`` runs (a running prime has announced itself), else what `timeout` gives
        when the time is up (124), without waiting it. A log no L2 writes is never
        announced."""
        assert "tail" in script and line == "nestlab-prime: up" and seconds >= 1
        for dom in self.conn.listAllDomains(0):
            logs = ET.fromstring(dom.XMLDesc(0)).findall("devices/serial/log")
            if any(e.get("file") == log for e in logs) and dom.state()[0] == \
                    libvirt.VIR_DOMAIN_RUNNING:
                return 0, "", ""
        return 124, "", ""

    def _virsh(self, args: list[str]) -> tuple[int, str, str]:
        """One command, or several in one argument (``a; b``), as virsh runs them: each
        after the one before, whether it failed or not; the exit status is the last's."""
        if len(args) == 1 and ";" in args[0]:
            answers = [self._virsh(shlex.split(part)) for part in args[0].split(";")]
            return (answers[-1][0], "".join(a[1] for a in answers),
                    "".join(a[2] for a in answers))
        try:
            return self._virsh_call(args)
        except libvirt.libvirtError as exc:
            return 1, "", f"error: {exc.get_error_message()}\n"

    def _virsh_call(self, args: list[str]) -> tuple[int, str, str]:
        conn = self.conn
        match args:
            case ["version"]:
                return 0, "Compiled against library: libvirt 9.0.0\n", ""
            case ["net-info", name]:
                net = conn.networkLookupByName(name)
                active = "yes" if net.isActive() else "no"
                autostart = "yes" if net.autostart() else "no"
                return 0, (f"Name:           {name}\nUUID:           {net.UUIDString()}\n"
                           f"Active:         {active}\nPersistent:     yes\n"
                           f"Autostart:      {autostart}\nBridge:         {net.bridgeName()}\n"
                           "\n"), ""
            case ["net-define", path]:
                conn.networkDefineXML(self.files[path].decode())
                return 0, "", ""
            case ["net-autostart", name]:
                conn.networkLookupByName(name).setAutostart(1)
                return 0, "", ""
            case ["net-start", name]:
                conn.networkLookupByName(name).create()
                return 0, "", ""
            case ["domuuid", name]:
                return 0, conn.lookupByName(name).UUIDString() + "\n\n", ""
            case ["dominfo", name]:
                conn.lookupByName(name)
                return 0, f"Name:           {name}\n", ""
            case ["define", path]:
                self._probe_qemu()
                conn.defineXMLFlags(self.files[path].decode(), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
                return 0, "", ""
            case ["domstate", name]:
                return 0, _STATES[conn.lookupByName(name).state()[0]] + "\n", ""
            case ["start", name]:
                conn.lookupByName(name).create()
                if QEMU_PROBE not in self.files:  # libvirt needs one to start a guest
                    self._probe_qemu()
                slow = b"<flag name='cpu-unavailable-features'/>" in self.files[QEMU_PROBE]
                self.cpu_reads.append((name, "per feature" if slow else "feature words"))
                return 0, "", ""
            case ["resume", name]:
                conn.lookupByName(name).resume()
                return 0, "", ""
            case ["suspend", name]:
                conn.lookupByName(name).suspend()
                return 0, f"Domain '{name}' suspended\n\n", ""
            case ["shutdown", name]:
                dom = conn.lookupByName(name)
                if not dom.isActive():
                    return 1, "", "error: Requested operation is not valid: domain is not " \
                                  "running\n"
                if name not in self.ignores_acpi:
                    dom.shutdown()
                return 0, f"Domain '{name}' is being shutdown\n\n", ""
            case ["destroy", name]:
                conn.lookupByName(name).destroy()
                return 0, "", ""
            case ["undefine", name]:
                conn.lookupByName(name).undefine()
                return 0, "", ""
            case ["list", "--all", "--name"]:
                return 0, "".join(d.name() + "\n" for d in conn.listAllDomains(0)) + "\n", ""
            case ["list", "--all"]:
                return 0, _domain_table(conn), ""
            case ["net-list", "--all"]:
                return 0, _network_table(conn), ""
            case ["echo", *words]:
                return 0, " ".join(words) + "\n", ""
        raise AssertionError(f"FakeLinuxL1 does not know `virsh {shlex.join(args)}`")

    def domain_state(self, name: str) -> str | None:
        """What the L1's libvirt says of a domain (None: not defined)."""
        try:
            return _STATES[self.conn.lookupByName(name).state()[0]]
        except libvirt.libvirtError:
            return None


@dataclass
class _DiskState:
    """What an L1's disk holds, as the fake models it."""

    conn: libvirt.virConnect
    files: dict[str, bytes] = field(default_factory=dict)
    folders: set[str] = field(default_factory=lambda: {"/", "/var", "/var/lib"})
    libvirtd_active: bool = False
    routes: dict[str, str] = field(default_factory=dict)
    l2_files: dict[str, set[str]] = field(default_factory=dict)
    clock: int | None = None
    l2_clocks: dict[str, int] = field(default_factory=dict)

    def restored_copy(self) -> _DiskState:
        """This state as a memory image holds it: the same files, routes and clocks, its
        libvirt's networks and domains running or paused as they are."""
        conn = libvirt.open(f"test://{TESTDRIVER}")
        for net in self.conn.listAllNetworks(0):
            copy = conn.networkDefineXML(net.XMLDesc(0))
            copy.setAutostart(net.autostart())
            if net.isActive():
                copy.create()
        for dom in self.conn.listAllDomains(0):
            copy_dom = conn.defineXML(dom.XMLDesc(0))
            copy_dom.setAutostart(dom.autostart())
            if dom.isActive():
                copy_dom.create()
            if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
                copy_dom.suspend()
        return _DiskState(conn, dict(self.files), set(self.folders), self.libvirtd_active,
                          dict(self.routes), {d: set(f) for d, f in self.l2_files.items()},
                          self.clock, dict(self.l2_clocks))

    def booted_copy(self) -> _DiskState:
        """A new top layer on this one, booted: the same files; the L1's libvirt starts
        its autostart networks and domains only; routes are not kept across a boot."""
        conn = libvirt.open(f"test://{TESTDRIVER}")
        for net in self.conn.listAllNetworks(0):
            copy = conn.networkDefineXML(net.XMLDesc(0))
            if net.autostart():
                copy.setAutostart(1)
                copy.create()
        for dom in self.conn.listAllDomains(0):
            copy_dom = conn.defineXML(dom.XMLDesc(0))
            if dom.autostart():
                copy_dom.setAutostart(1)
                copy_dom.create()
        return _DiskState(conn, dict(self.files), set(self.folders), self.libvirtd_active, {},
                          {d: set(f) for d, f in self.l2_files.items()})


def _top(chain: object) -> object:
    return chain[0] if isinstance(chain, tuple) else chain


def _domain_table(conn: libvirt.virConnect) -> str:
    """`virsh list --all` as virsh 9.0 prints it: running domains by id first, then the
    others with id "-"."""
    domains = sorted(conn.listAllDomains(0), key=lambda d: (d.ID() < 0, d.ID(), d.name()))
    return _virsh_table(("Id", "Name", "State"), [
        (str(d.ID()) if d.ID() >= 0 else "-", d.name(), _STATES[d.state()[0]])
        for d in domains])


def _network_table(conn: libvirt.virConnect) -> str:
    """`virsh net-list --all` as virsh 9.0 prints it, by name."""
    def yes(flag: int) -> str:
        return "yes" if flag else "no"

    networks = sorted(conn.listAllNetworks(0), key=lambda n: n.name())
    return _virsh_table(("Name", "State", "Autostart", "Persistent"), [
        (n.name(), "active" if n.isActive() else "inactive", yes(n.autostart()),
         yes(n.isPersistent())) for n in networks])


def _virsh_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A virsh 9.0 table: columns padded to their widest cell and three spaces apart, a
    rule two characters longer than the header, a blank line at the end."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows,
                                                                   strict=False)]

    def line(cells: tuple[str, ...]) -> str:
        return (" " + "   ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))).rstrip()

    rule = "-" * (sum(widths) + 3 * (len(widths) - 1) + 3)
    return "\n".join([line(header), rule, *map(line, rows)]) + "\n\n"


@dataclass
class FakePrime(Transport):
    """An L2 reached through its FAKE L1: it answers while its domain runs there."""

    name: str
    domain: str
    l1: FakeLinuxL1

    def wait_until_reachable(self, timeout: float, waiting: Callable[[str], None] | None = None,
                             cancel: threading.Event | None = None) -> None:
        def answers() -> bool:
            if self.l1.domain_state(self.domain) != "running":
                raise NotYet(f"{self.domain} is {self.l1.domain_state(self.domain)} (fake)")
            return True

        try:  # as SSHTransport: a guest that does not answer in time is Unreachable
            wait_for(answers, timeout=timeout, interval=0.05, what=f"{self.name}: SSH",
                     cancel=cancel, progress=waiting)
        except WaitTimedOut as exc:
            raise Unreachable(exc.message, hint=exc.hint) from None

    def reconnect(self, timeout: float) -> None:
        self.wait_until_reachable(timeout)

    def close(self) -> None:
        pass

    def put(self, local: Path, remote: str) -> None:
        raise AssertionError("nestlab copies nothing into an L2")

    def put_text(self, text: str, remote: str, mode: int = 0o644) -> None:
        raise AssertionError("nestlab copies nothing into an L2")

    def run(self, argv: list[str], timeout: float = 600.0) -> CommandResult:
        if argv[:2] == ["sh", "-c"] and len(argv) == 3:  # a command line (the pytest plugin)
            return self.run(shlex.split(argv[2]), timeout)
        state = self.l1.domain_state(self.domain)
        if state != "running":
            raise TransportError(f"{self.name}: no answer: its domain is {state} (fake)")
        files = self.l1.l2_files.setdefault(self.domain, set())
        match argv:
            case ["date", "-u", "-s", stamp] if stamp.startswith("@"):
                self.l1.l2_clocks[self.domain] = int(stamp[1:])
                return CommandResult(shlex.join(argv), 0, "", "")
            case ["touch", path]:
                files.add(path)
                return CommandResult(shlex.join(argv), 0, "", "")
            case ["test", "-e", path]:
                return CommandResult(shlex.join(argv), 0 if path in files else 1, "", "")
        answers = {("uname", "-r"): "6.1.0-fake-amd64\n", ("cat", "/proc/uptime"): "3.50 1.00\n",
                   ("cat", "/proc/uptime", "/proc/sys/kernel/osrelease"):
                       "3.50 1.00\n6.1.0-fake-amd64\n",
                   ("hostname",): f"{self.name}\n"}
        out = answers.get(tuple(argv))
        if out is None:
            raise AssertionError(f"FakePrime does not know `{shlex.join(argv)}`")
        return CommandResult(shlex.join(argv), 0, out, "")
