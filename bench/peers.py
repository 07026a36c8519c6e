"""Benchmark: nestlab against two peers, the same nested job done three ways, one run.

Each tool gets its own sandbox (nestlab.sandbox: a network namespace with a private
libvirtd; nestlab's `up --sandbox` makes its own per lab) and does, in turn:

* **nestlab**: `nestlab up --sandbox -f examples/linux-nested.yaml`.
* **vagrant-libvirt**: `vagrant up` of a box made from the same Debian 12 base image
  (qcow2 + metadata.json), booted with the provider's kernel/initrd/cmd_line options,
  `driver = "qemu"`, `nested = true`, `cpu_mode = "custom"`, `cpu_model = "EPYC"` and
  a required `svm` feature; it logs in as root with the lab's key (the seed ISO puts
  the key in root's authorized_keys; `ssh.private_key_path` names it).
* **virt-install**: `virsh net-create` of the lab network nestlab renders, then
  `virt-install --import` of an overlay on the same base image (same kernel, initrd,
  command line, CPU, seed ISO, MAC).

The L1s of all three boot the same kernel (the image's uncompressed one, by its PVH
entry). After a peer's L1 answers SSH, the bench does what a user would script: copies
the prime's kernel as Debian packages it (the 8 MB bzImage) and its initrd into the L1
and runs one shell script there (start libvirtd, define + start the L2 NAT network,
create the L2 disk, define + start the L2 with the XML `nestlab render` prints); then,
like nestlab, it waits for the L2's own SSH through the L1 and runs `uname -r` there.
Every L1 gets the same seed ISO (nestlab.build.seed).

Measured, from each tool's first command (sandbox start excluded for all three):
L1 SSH-ready, L2 proven, and overhead: the time until libvirt reports 1 and 4 small
L1s (512 MiB) running; those are destroyed as soon as they run, after one untimed
warm-up of the 1-L1 run (vagrant's first run uploads its box into the pool). Root,
real VMs:

    sudo .venv/bin/python bench/peers.py

Needs `apt-get install --no-install-recommends vagrant vagrant-libvirt virtinst`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB_FILE = REPO / "examples" / "linux-nested.yaml"
LAB = "linux-nested"
L1 = "kvm1"
L1_CMDLINE = "root=/dev/vda rw console=ttyS0,115200n8"
L1_MEMORY_MIB = 3072
SMALL_MEMORY_MIB = 512
BOX = "nestlab-debian-12"
GiB = 1024 ** 3
TOOLS = ("nestlab", "vagrant-libvirt", "virt-install")
COLUMNS = ("L1 SSH-ready", "L2 proven", "overhead 1 L1", "overhead 4 L1s")
NAMESPACES = [f"nestlab-{lab}" for lab in
              (LAB, "peers-warm", "peers-one", "peers-four", "peers-vagrant", "peers-virt")]

# Runs in a peer's L1 as root: what a user would script to get the L2 going.
L2_SCRIPT = r"""
set -eu
net_xml="$1"; net="$2"; disk="$3"; size="$4"; dom_xml="$5"; dom="$6"
systemctl start libvirtd
virsh -c qemu:///system net-define "$net_xml"
virsh -c qemu:///system net-start "$net"
mkdir -p "$(dirname "$disk")"
qemu-img create -q -f qcow2 "$disk" "$size"
virsh -c qemu:///system define "$dom_xml"
virsh -c qemu:///system start "$dom"
"""


# -- pure parts (tested in tests/unit/test_bench_peers.py) ------------------------------

def box_metadata(virtual_size_bytes: int) -> dict[str, object]:
    """vagrant-libvirt's metadata.json: the size in whole GiB, rounded up."""
    return {"provider": "libvirt", "format": "qcow2",
            "virtual_size": math.ceil(virtual_size_bytes / GiB)}


def _ruby(text: str) -> str:
    """A Ruby string literal; single quotes interpolate nothing."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class VagrantSpec:
    """What the Vagrantfile says; paths are absolute."""

    uri: str
    key: Path
    kernel: Path
    initrd: Path
    seed: Path
    pool: Path
    memory_mib: int
    machines: tuple[str, ...]


def vagrantfile(spec: VagrantSpec) -> str:
    """The Vagrantfile: nested CPU as vagrant-libvirt documents it, the private libvirtd,
    root with the lab's key (no sudo: the image has none), no synced folder (the image
    has no rsync and none is needed)."""
    lines = [
        'Vagrant.configure("2") do |config|',
        f"  config.vm.box = {_ruby(BOX)}",
        "  config.vm.box_check_update = false",
        "  config.vm.synced_folder '.', '/vagrant', disabled: true",
        "  config.ssh.username = 'root'",
        f"  config.ssh.private_key_path = {_ruby(str(spec.key))}",
        "  config.ssh.insert_key = false",
        "  config.ssh.sudo_command = '%c'",  # root already; the image has no sudo
        "  config.vm.provider :libvirt do |lv|",
        f"    lv.uri = {_ruby(spec.uri)}",
        "    lv.driver = 'qemu'",
        f"    lv.memory = {spec.memory_mib}",
        "    lv.cpus = 1",
        "    lv.machine_type = 'q35'",
        "    lv.nested = true",
        "    lv.cpu_mode = 'custom'",
        "    lv.cpu_model = 'EPYC'",
        "    lv.cpu_feature name: 'svm', policy: 'require'",
        f"    lv.kernel = {_ruby(str(spec.kernel))}",
        f"    lv.initrd = {_ruby(str(spec.initrd))}",
        f"    lv.cmd_line = {_ruby(L1_CMDLINE)}",
        f"    lv.storage :file, device: :cdrom, bus: 'sata', dev: 'sdb', "
        f"path: {_ruby(str(spec.seed))}",
        f"    lv.storage_pool_path = {_ruby(str(spec.pool))}",
        "  end",
    ]
    lines += [f"  config.vm.define {_ruby(name)}" for name in spec.machines]
    return "\n".join([*lines, "end", ""])


@dataclass
class Outcome:
    """One tool's times in seconds (None: not measured) or why it failed."""

    tool: str
    times: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None
    log: Path | None = None
    steps: dict[str, float] = field(default_factory=dict)
    """Where the time to the L2 went: step -> seconds."""


def _cell(value: float | None, base: float | None) -> str:
    if value is None:
        return "-"
    if base is None or base <= 0:
        return f"{value:.1f}s"
    return f"{value:.1f}s ({value / base:.2f}x)"


def format_table(outcomes: list[Outcome]) -> str:
    """Rows = tools, columns = the times, each with its ratio to nestlab's."""
    base = next((o.times for o in outcomes if o.tool == "nestlab"), {})
    header = ["tool", *COLUMNS]
    rows = [[o.tool + (" (FAILED)" if o.error else ""),
             *(_cell(o.times.get(c), base.get(c)) for c in COLUMNS)] for o in outcomes]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(header), *(line(r) for r in rows)])


def rendered_l2(out: Path) -> dict[str, str]:
    """From `nestlab render --out OUT`: the L2's network and domain, and what the script
    needs to know about them (names, disk path and its size, boot files)."""
    net_xml = next((out / "l1" / L1 / "networks").glob("*.xml"))
    dom_xml = next((out / "l1" / L1 / "domains").glob("*.xml"))
    dom = ET.parse(dom_xml).getroot()  # noqa: S314 - nestlab's own output
    return {
        "net_xml": net_xml.read_text(), "dom_xml": dom_xml.read_text(),
        "net": ET.parse(net_xml).getroot().findtext("name") or "",  # noqa: S314
        "dom": dom.findtext("name") or "",
        "disk": dom.find("devices/disk/source").get("file", ""),  # type: ignore[union-attr]
        "kernel": dom.findtext("os/kernel") or "",
        "initrd": dom.findtext("os/initrd") or "",
    }


# -- running the tools ------------------------------------------------------------------

class Failed(Exception):
    """A tool's step failed; the message names its log."""


def require_programs() -> None:
    missing = [p for p in ("vagrant", "virt-install", "virsh", "qemu-img")
               if shutil.which(p) is None]
    plugin = subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True,
                            check=False).stdout if shutil.which("vagrant") else ""
    if "vagrant-libvirt" not in plugin:
        missing.append("vagrant-libvirt")
    if missing:
        raise SystemExit(f"bench/peers needs {', '.join(missing)}: apt-get install -y "
                         "--no-install-recommends vagrant vagrant-libvirt virtinst")


def run_logged(log: Path, argv: list[str], env: dict[str, str] | None = None,
               cwd: Path | None = None, timeout: float = 900) -> str:
    with log.open("a") as handle:
        handle.write(f"\n$ {' '.join(argv)}\n")
        handle.flush()
        result = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                stderr=handle, text=True, timeout=timeout, check=False)
        handle.write(result.stdout)
    if result.returncode != 0:
        raise Failed(f"`{' '.join(argv)}` failed ({result.returncode}); see {log}")
    return result.stdout


def wait_running(uri: str, prefix: str, count: int, proc: subprocess.Popen[bytes] | None,
                 log: Path, timeout: float = 600) -> float:
    """time.time() when libvirt first reports ``count`` domains named ``prefix``* running
    (one connection, kept, polled every 0.1 s)."""
    import libvirt

    from nestlab.virt.connection import LibvirtError, connect

    deadline = time.monotonic() + timeout
    conn = None
    try:
        while time.monotonic() < deadline:
            try:
                conn = conn or connect(uri)
                running = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_RUNNING)
                if sum(1 for d in running if d.name().startswith(prefix)) >= count:
                    return time.time()
            except (libvirt.libvirtError, LibvirtError):
                conn = None  # the daemon is not there yet (nestlab starts its own)
            if proc is not None and proc.poll() is not None:
                raise Failed(f"the command ended ({proc.returncode}) before {count} L1s "
                             f"ran; see {log}")
            time.sleep(0.1)
    finally:
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
    raise Failed(f"{count} L1s were not running after {timeout:.0f}s; see {log}")


def interrupt(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 180) -> None:
    """Ctrl-C, as a user would; killed when it does not end."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Work:
    """Paths and shared inputs of one bench run."""

    root: Path
    base: Path          # the Debian 12 qcow2
    kernel: Path
    initrd: Path
    prime_kernel: Path
    prime_initrd: Path
    lab_dir: Path       # of the peers' lab: its key, which render puts in the L2
    l2: dict[str, str]

    def folder(self, tool: str) -> Path:
        path = self.root / tool
        path.mkdir(parents=True, exist_ok=True)
        return path


def prepare(root: Path) -> Work:
    """Build (or reuse) the images, make the lab key, render the L2 XML with it."""
    from nestlab.build.images import require_image
    from nestlab.state.keys import ensure_lab_key

    env = {**os.environ, "NESTLAB_HOME": str(root / "nestlab-home")}
    for image in ("debian-12", "prime"):
        subprocess.run([sys.executable, "-m", "nestlab", "image", "build", image], env=env,
                       check=True, capture_output=True)
    base, prime = require_image("debian-12"), require_image("prime")
    lab_dir = root / "peers-home" / "labs" / LAB
    ensure_lab_key(lab_dir)
    out = root / "render"
    subprocess.run([sys.executable, "-m", "nestlab", "render", "-f", str(LAB_FILE), "--out",
                    str(out)], env={**os.environ, "NESTLAB_HOME": str(lab_dir.parent.parent)},
                   check=True, capture_output=True)
    assert base.disk and prime.kernel and prime.initrd
    kernel, initrd = base.boot_files()  # the kernel nestlab boots its L1s with (PVH)
    return Work(root, base.disk, kernel, initrd, prime.kernel, prime.initrd,
                lab_dir, rendered_l2(out) | {"l0_net": str(next(
                    (out / "l0" / "networks").glob("*.xml")))})


def l0_network(path: Path) -> tuple[str, str, str]:
    """(name, MAC, IP) of the L1 in the network nestlab renders for the demo lab."""
    net = ET.parse(path).getroot()  # noqa: S314 - nestlab's own output
    host = net.find("ip/dhcp/host")
    assert host is not None
    return net.findtext("name") or "", host.get("mac", ""), host.get("ip", "")


@contextlib.contextmanager
def peer_sandbox(work: Work, tool: str) -> Iterator[tuple[str, str]]:
    """(netns, uri) of a private libvirtd for one peer; stopped (guests and all) after."""
    from nestlab import sandbox

    box = sandbox.Sandbox(f"peers-{tool.split('-')[0]}", work.folder(tool) / "sandbox")
    sandbox.start(box)
    try:
        yield box.netns, box.uri
    finally:
        sandbox.stop(box)


def seed_iso(work: Work, folder: Path) -> Path:
    from nestlab.build.seed import write_seed_iso
    from nestlab.state.keys import public_key_path

    path = folder / "seed.iso"
    write_seed_iso(path, {"hostname": L1 + "\n",
                          "authorized_keys": public_key_path(work.lab_dir).read_text()})
    return path


def l2_steps_and_proof(work: Work, netns: str, l1_ip: str, folder: Path,
                       boot_timeout: float = 300) -> tuple[float, float, float]:
    """Wait for the L1's SSH, then the scripted L2 steps and the proof through the L1:
    time.time() at the L1's SSH, at the end of the L2 script, at the L2's `uname -r`."""
    from nestlab.sandbox import open_socket
    from nestlab.state.keys import load_private_key
    from nestlab.transport.ssh import SSHTransport

    key = load_private_key(work.lab_dir)
    known = folder / "known_hosts"
    l1 = SSHTransport(L1, lambda t: open_socket(netns, l1_ip, 22, t), key, known)
    l1.wait_until_reachable(boot_timeout)
    ready = time.time()
    l2_info = work.l2
    staging = "/root/peers"
    l1.check(["mkdir", "-p", staging, str(Path(l2_info["kernel"]).parent)])
    l1.put(work.prime_kernel, l2_info["kernel"])
    l1.put(work.prime_initrd, l2_info["initrd"])
    l1.put_text(l2_info["net_xml"], f"{staging}/l2-net.xml")
    l1.put_text(l2_info["dom_xml"], f"{staging}/l2-domain.xml")
    result = l1.run(["sh", "-c", L2_SCRIPT, "l2", f"{staging}/l2-net.xml", l2_info["net"],
                     l2_info["disk"], "256M", f"{staging}/l2-domain.xml", l2_info["dom"]],
                    timeout=300)
    with (folder / "l2-script.log").open("w") as log:
        log.write(result.stdout + result.stderr)
    if not result.ok:
        raise Failed(f"the L2 script failed ({result.exit_status}); see {folder / 'l2-script.log'}")
    scripted = time.time()
    l2_ip = ET.fromstring(l2_info["net_xml"]).find("ip/dhcp/host").get("ip")  # type: ignore[union-attr]  # noqa: S314
    l2 = SSHTransport("prime1", lambda t: l1.open_channel(str(l2_ip), 22, t), key, known)
    try:
        l2.wait_until_reachable(300)
        kernel = l2.check(["uname", "-r"]).stdout.strip()
        proven = time.time()
    finally:
        l2.close()
        l1.close()
    (folder / "proof.txt").write_text(f"L2 answered through the L1: kernel {kernel}\n")
    return ready, scripted, proven


# -- nestlab ---------------------------------------------------------------------------

def nestlab_lab_file(folder: Path, name: str, hosts: int) -> Path:
    """A lab of ``hosts`` small L1s without L2s (for the overhead runs)."""
    text = [f"lab: {name}", "networks:", "  - name: lab", "    mode: nat",
            "    cidr: 10.78.0.0/24", "hosts:"]
    for i in range(1, hosts + 1):
        text += [f"  - name: kvm{i}", "    os: debian-12", f"    memory: {SMALL_MEMORY_MIB}MiB",
                 "    disk: 8GiB", "    networks: [lab]"]
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(text) + "\n")
    return path


def _sandbox_seconds(lab_dir: Path) -> float:
    """What nestlab's `up` spent starting its sandbox (the peers' start before the clock)."""
    from nestlab.state.record import read_events

    return sum(float(e["end"]) - float(e["start"]) for e in read_events(lab_dir)
               if e["phase"] == "sandbox libvirtd")


def run_nestlab(work: Work) -> Outcome:
    from nestlab import sandbox as sandboxes

    folder = work.folder("nestlab")
    home = folder / "home"
    env = {**os.environ, "NESTLAB_HOME": str(home)}
    log = folder / "nestlab.log"
    outcome = Outcome("nestlab", log=log)
    nl = [sys.executable, "-m", "nestlab"]

    def overhead(name: str, hosts: int) -> float:
        lab_file = nestlab_lab_file(folder, name, hosts)
        lab_dir = home / "labs" / name
        box = sandboxes.Sandbox(name, lab_dir / "sandbox")
        with log.open("a") as handle:
            handle.write(f"\n$ nestlab up --sandbox -f {lab_file} (interrupted when running)\n")
            handle.flush()
            started = time.time()
            proc = subprocess.Popen([*nl, "up", "--sandbox", "-f", str(lab_file)], env=env,
                                    stdout=handle, stderr=handle)
        try:
            running = wait_running(box.uri, f"nestlab-{name}-", hosts, proc, log)
            sandbox_seconds = _sandbox_seconds(lab_dir)  # before `down --purge` deletes it
        finally:
            interrupt(proc)
            run_logged(log, [*nl, "down", "--lab", name, "--purge"], env=env)
            sandboxes.stop(box)
        return running - started - sandbox_seconds

    try:
        overhead("peers-warm", 1)
        outcome.times["overhead 1 L1"] = overhead("peers-one", 1)
        outcome.times["overhead 4 L1s"] = overhead("peers-four", 4)
        started = time.time()
        try:
            up = json.loads(run_logged(log, [*nl, "up", "--sandbox", "-f", str(LAB_FILE),
                                             "--json"], env=env))
        finally:
            with contextlib.suppress(Failed):
                run_logged(log, [*nl, "down", "--lab", LAB, "--purge"], env=env)
            sandboxes.stop(sandboxes.Sandbox(LAB, home / "labs" / LAB / "sandbox"))
        ends = {t["phase"]: t["end"] for t in up["timings"]}
        offset = started + sum(t["end"] - t["start"] for t in up["timings"]
                               if t["phase"] == "sandbox libvirtd")
        outcome.times["L1 SSH-ready"] = ends["ssh"] - offset
        outcome.times["L2 proven"] = max(v for k, v in ends.items()
                                         if k.startswith("proven")) - offset
        (folder / "proof.txt").write_text(json.dumps(up["proofs"], indent=2) + "\n")
        l1_ssh = ends["ssh"]
        outcome.steps = {t["phase"]: float(t["seconds"]) for t in up["timings"]
                         if t["start"] >= l1_ssh - 0.05 and t["phase"] != "ssh"}
    except (Failed, subprocess.SubprocessError, OSError, KeyError, ValueError) as exc:
        outcome.error = str(exc) or type(exc).__name__
    return outcome


# -- vagrant-libvirt -------------------------------------------------------------------

def make_box(work: Work, folder: Path) -> Path:
    """A vagrant-libvirt box: the qcow2 as box.img plus metadata.json, uncompressed tar."""
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(work.base)],
                                     capture_output=True, text=True, check=True).stdout)
    metadata = folder / "metadata.json"
    metadata.write_text(json.dumps(box_metadata(info["virtual-size"])) + "\n")
    path = folder / f"{BOX}.box"
    with tarfile.open(path, "w") as tar:
        tar.add(metadata, "metadata.json")
        tar.add(work.base, "box.img")
    return path


def timestamped(proc: subprocess.Popen[str], log: Path, marks: dict[str, float],
                wanted: str) -> threading.Thread:
    """Copy the command's output to ``log``, noting when the line with ``wanted`` came."""

    def copy() -> None:
        with log.open("a") as handle:
            assert proc.stdout is not None
            for line in proc.stdout:
                if wanted in line and wanted not in marks:
                    marks[wanted] = time.time()
                handle.write(line)
                handle.flush()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def run_vagrant(work: Work) -> Outcome:
    folder = work.folder("vagrant-libvirt")
    log = folder / "vagrant.log"
    outcome = Outcome("vagrant-libvirt", log=log)
    env = {**os.environ, "VAGRANT_HOME": str(folder / "vagrant.d"),
           "VAGRANT_DEFAULT_PROVIDER": "libvirt", "VAGRANT_CHECKPOINT_DISABLE": "1",
           "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1"}
    from nestlab.state.keys import private_key_path

    try:
        box = make_box(work, folder)
        run_logged(log, ["vagrant", "box", "add", "--name", BOX, str(box)], env=env)
        box.unlink()
        seed = seed_iso(work, folder)
        with peer_sandbox(work, "vagrant-libvirt") as (netns, uri):
            def project(name: str, memory: int, machines: tuple[str, ...]) -> Path:
                path = folder / name
                path.mkdir(exist_ok=True)
                (path / "Vagrantfile").write_text(vagrantfile(VagrantSpec(
                    uri, private_key_path(work.lab_dir), work.kernel, work.initrd, seed,
                    folder / "pool", memory, machines)))
                return path

            vagrant = ["ip", "netns", "exec", netns, "vagrant"]

            def overhead(name: str, hosts: int) -> float:
                path = project(name, SMALL_MEMORY_MIB, tuple(f"kvm{i}" for i in
                                                             range(1, hosts + 1)))
                with log.open("a") as handle:
                    handle.write(f"\n$ (in {path}) vagrant up (interrupted when running)\n")
                    handle.flush()
                    started = time.time()
                    proc = subprocess.Popen([*vagrant, "up"], cwd=path, env=env,
                                            stdout=handle, stderr=handle)
                try:
                    running = wait_running(uri, f"{name}_", hosts, proc, log)
                finally:
                    interrupt(proc)
                    run_logged(log, [*vagrant, "destroy", "-f"], env=env, cwd=path)
                return running - started

            overhead("warm", 1)
            outcome.times["overhead 1 L1"] = overhead("one", 1)
            outcome.times["overhead 4 L1s"] = overhead("four", 4)

            path = project("lab", L1_MEMORY_MIB, (L1,))
            marks: dict[str, float] = {}
            ready_line = "Machine booted and ready!"
            with log.open("a") as handle:
                handle.write(f"\n$ (in {path}) vagrant up\n")
            started = time.time()
            proc = subprocess.Popen([*vagrant, "up"], cwd=path, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            copier = timestamped(proc, log, marks, ready_line)
            try:
                if proc.wait(900) != 0:
                    raise Failed(f"vagrant up failed ({proc.returncode}); see {log}")
                copier.join(10)
                ssh_config = run_logged(log, [*vagrant, "ssh-config"], env=env, cwd=path)
                address = next(line.split()[1] for line in ssh_config.splitlines()
                               if line.strip().startswith("HostName"))
                returned = time.time()
                _ready, scripted, proven = l2_steps_and_proof(work, netns, address, folder)
            finally:
                interrupt(proc)
                with contextlib.suppress(Failed):
                    run_logged(log, [*vagrant, "destroy", "-f"], env=env, cwd=path)
            outcome.times["L1 SSH-ready"] = marks[ready_line] - started
            outcome.times["L2 proven"] = proven - started
            outcome.steps = {"vagrant up, after its 'ready' line": returned - marks[ready_line],
                             "copy + L2 script": scripted - returned,
                             "L2 SSH + uname -r": proven - scripted}
    except (Failed, subprocess.SubprocessError, OSError, KeyError, StopIteration) as exc:
        outcome.error = str(exc) or type(exc).__name__
    except Exception as exc:  # a nestlab transport error while scripting the L2
        outcome.error = f"{type(exc).__name__}: {exc}"
    return outcome


# -- virt-install ----------------------------------------------------------------------

def virt_install_argv(uri: str, name: str, memory: int, disk: Path, seed: Path,
                      kernel: Path, initrd: Path, network: str, mac: str | None) -> list[str]:
    nic = f"network={network},model=virtio" + (f",mac={mac}" if mac else "")
    return ["virt-install", "--connect", uri, "--import", "--name", name,
            "--memory", str(memory), "--vcpus", "1", "--virt-type", "qemu",
            "--machine", "q35", "--cpu", "EPYC,require=svm,match=exact",
            "--boot", f"kernel={kernel},initrd={initrd},kernel_args={L1_CMDLINE}",
            "--disk", f"path={disk},format=qcow2,bus=virtio",
            "--disk", f"path={seed},device=cdrom,bus=sata",
            "--network", nic, "--graphics", "none", "--osinfo", "debian11",
            "--noautoconsole"]


def run_virt_install(work: Work) -> Outcome:
    folder = work.folder("virt-install")
    log = folder / "virt-install.log"
    outcome = Outcome("virt-install", log=log)
    net_xml = Path(work.l2["l0_net"])
    network, mac, ip = l0_network(net_xml)
    try:
        seed = seed_iso(work, folder)
        with peer_sandbox(work, "virt-install") as (netns, uri):
            virsh = ["virsh", "-c", uri]

            def up(names: list[str], memory: int, macs: list[str | None]) -> None:
                run_logged(log, [*virsh, "net-create", str(net_xml)])
                for name, nic_mac in zip(names, macs, strict=True):
                    disk = folder / f"{name}.qcow2"
                    run_logged(log, ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                                     "-b", str(work.base), str(disk), "8G"])
                    run_logged(log, virt_install_argv(uri, name, memory, disk, seed,
                                                      work.kernel, work.initrd, network,
                                                      nic_mac))

            def down(names: list[str]) -> None:
                for name in names:
                    subprocess.run([*virsh, "destroy", name], capture_output=True, check=False)
                    subprocess.run([*virsh, "undefine", name], capture_output=True, check=False)
                    (folder / f"{name}.qcow2").unlink(missing_ok=True)
                subprocess.run([*virsh, "net-destroy", network], capture_output=True,
                               check=False)

            def overhead(hosts: int) -> float:
                names = [f"peers-small{i}" for i in range(1, hosts + 1)]
                started = time.time()
                try:
                    up(names, SMALL_MEMORY_MIB, [None] * hosts)
                    return wait_running(uri, "peers-small", hosts, None, log) - started
                finally:
                    down(names)

            overhead(1)
            outcome.times["overhead 1 L1"] = overhead(1)
            outcome.times["overhead 4 L1s"] = overhead(4)
            started = time.time()
            try:
                up([f"peers-{L1}"], L1_MEMORY_MIB, [mac])
                ready, scripted, proven = l2_steps_and_proof(work, netns, ip, folder)
            finally:
                down([f"peers-{L1}"])
            outcome.times["L1 SSH-ready"] = ready - started
            outcome.times["L2 proven"] = proven - started
            outcome.steps = {"copy + L2 script": scripted - ready,
                             "L2 SSH + uname -r": proven - scripted}
    except (Failed, subprocess.SubprocessError, OSError) as exc:
        outcome.error = str(exc)
    except Exception as exc:  # a nestlab transport error while scripting the L2
        outcome.error = f"{type(exc).__name__}: {exc}"
    return outcome


RUNNERS: dict[str, Callable[[Work], Outcome]] = {
    "nestlab": run_nestlab, "vagrant-libvirt": run_vagrant, "virt-install": run_virt_install}


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("bench/peers needs root (sandboxes, real VMs)")
    require_programs()
    from nestlab.sandbox import netns_exists

    # Starting a sandbox clears a namespace of the same name: never someone else's.
    taken = [n for n in NAMESPACES if netns_exists(n)]
    if taken:
        raise SystemExit(f"network namespace {', '.join(taken)} exists: another run is using "
                         "it; try again when it is gone")
    # As nestlab's CLI: paramiko logs every refused connection while a guest boots.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    root = Path(tempfile.mkdtemp(prefix="nestlab-peers-"))
    work = prepare(root)
    outcomes = []
    for tool in sys.argv[1:] or TOOLS:
        print(f"{tool} ...", flush=True)
        outcome = RUNNERS[tool](work)
        outcomes.append(outcome)
        print(f"{tool}: {outcome.error or outcome.times}", flush=True)
    print()
    print(format_table(sorted(outcomes, key=lambda o: TOOLS.index(o.tool))))
    print("\nafter the L1's SSH, to the L2 proven:")
    for o in outcomes:
        print(f"  {o.tool}: " + ", ".join(f"{k} {v:.1f}s" for k, v in o.steps.items()))
    failed = [o for o in outcomes if o.error]
    for o in failed:
        print(f"\n{o.tool} failed: {o.error}\n  log: {o.log}", file=sys.stderr)
    if failed:
        print(f"\nlogs and disks kept in {root}", file=sys.stderr)
        raise SystemExit(1)
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
