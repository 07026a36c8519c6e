"""Provision a Linux L1 over SSH: KVM present and nested, libvirt running, the L2
network, the prime image, and each L2 defined and started. Every step checks
first whether it is already done, so a second run changes nothing.
"""

from __future__ import annotations

import hashlib
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from nestlab.build.images import (
    L1_GUEST_DIR,
    L1_SUMS,
    BuiltImage,
    l1_copies,
    l1_sums,
)
from nestlab.errors import NestlabError
from nestlab.files import write_atomic
from nestlab.plan import GuestPlan, HostPlan, Plan
from nestlab.render import render_guest_domain_xml, render_guest_network_xml, with_uuid
from nestlab.steps import Step
from nestlab.transport import Transport
from nestlab.transport.base import CommandFailed, CommandResult
from nestlab.transport.batch import RememberedReads
from nestlab.waiting import NotYet, WaitTimedOut, wait_for

Say = Callable[[str, str], None]


class ProvisionError(NestlabError):
    """An L1 is not in a state to run L2 guests."""


def provision_steps(t: Transport, plan: Plan, host: HostPlan,
                    images: dict[str, BuiltImage], say: Say,
                    redefine: frozenset[str] = frozenset()) -> list[Step]:
    """Everything inside one Linux L1, up to its L2s started (not yet proven), as steps.

    The first step asks every "is it done?" question of the others in one round trip
    (``l1_reads``); each later step is answered from it until one has to act."""
    no_l2s = None if host.guests else "the L1 has no L2s"
    reads = RememberedReads(t)
    probe = QemuProbe(images, host.base_image, host.cpus)
    steps = [
        Step(host.name, "state in L1", partial(_fetch_reads, reads, host, images)),
        Step(host.name, "kvm in L1", partial(require_kvm, reads, host)),
        Step(host.name, "libvirt in L1", partial(ensure_libvirt, reads)),
        Step(host.name, "QEMU probe from L0", partial(ensure_qemu_probe, reads, probe),
             skip=no_l2s),
    ]
    # The images first: their check is answered from the first step's reads, which the
    # network's start would make old.
    for name in sorted({g.image for g in host.guests}):
        steps.append(Step(host.name, f"L2 image {name}",
                          partial(_ensure_image_named, reads, images, name)))
    steps += [
        Step(host.name, "L2 network", partial(ensure_guest_network, reads, plan, host),
             skip=no_l2s),
        Step(host.name, "routes to other L1s' L2s", partial(ensure_routes, reads, host),
             skip=None if host.guest_network.routes else "its L2 network is not routed"),
    ]
    for guest in host.guests:
        steps.append(Step(guest.name, f"define + start in {host.name}",
                          partial(ensure_guest, reads, plan, host, guest, say,
                                  guest.name in redefine)))
    if host.guests:
        steps.append(Step(host.name, "QEMU probe kept on L0",
                          partial(keep_qemu_probe, reads, probe)))
    return steps


def l1_reads(host: HostPlan, images: dict[str, BuiltImage]) -> list[list[str]]:
    """The commands that ``provision_steps`` read with (none of them changes anything), as
    they send them: what a lab that is up answers to all of them is that every step is
    done."""
    reads = [["test", "-c", "/dev/kvm"], *(_nested_argv(m) for m in _KVM_MODULES),
             _LIBVIRT_TABLES]
    reads += [["ip", "-4", "route", "show", str(cidr)] for cidr, _via in
              host.guest_network.routes]
    if not host.guests:
        return reads
    reads += [_HAS_PROBE, *(["test", "-d", f] for f in (_PROBE_FOLDER, _NETWORKS_FOLDER))]
    for name in sorted({g.image for g in host.guests}):
        if name in images:
            reads += _listed_reads(images[name])
    return reads + [["test", "-e", g.disk_path] for g in host.guests]


def _fetch_reads(reads: RememberedReads, host: HostPlan,
                 images: dict[str, BuiltImage]) -> bool:
    reads.fetch(l1_reads(host, images), timeout=_VIRSH_TIMEOUT)
    return False


def _ensure_image_named(t: Transport, images: dict[str, BuiltImage], name: str) -> bool:
    return ensure_guest_image(t, images[name])  # built by an L0 step before this runs


def require_kvm(t: Transport, host: HostPlan) -> bool:
    """A check, not a change: raises unless KVM with nesting is ready in the L1."""
    check_kvm(t, host)
    return False


_KVM_MODULES = ("kvm_amd", "kvm_intel")
_VIRSH_TIMEOUT = 180.0
"""The first define in an L1 makes libvirt probe QEMU (~4 s under emulation; none when L0
put its probe there, ``QEMU_PROBE``); a loaded host may take several times that."""


def _nested_argv(module: str) -> list[str]:
    return ["cat", f"/sys/module/{module}/parameters/nested"]


def check_kvm(t: Transport, host: HostPlan) -> str:
    """/dev/kvm exists in L1 and its vendor module has nested on; returns 'kvm_amd=1' etc."""
    if not t.run(["test", "-c", "/dev/kvm"]).ok:
        raise ProvisionError(
            f"{host.name}: /dev/kvm does not exist inside the L1, so it cannot run L2s",
            hint="The L1's CPU lacks vmx/svm: check the domain's <cpu> (nestlab render).")
    for module in _KVM_MODULES:
        result = t.run(_nested_argv(module))
        if result.ok:
            value = result.stdout.strip()
            if value not in ("1", "Y", "y"):
                raise ProvisionError(f"{host.name}: {module} nested={value} inside the L1")
            return f"{module} nested={value}"
    raise ProvisionError(f"{host.name}: neither kvm_amd nor kvm_intel is loaded in the L1")


def ensure_libvirt(t: Transport) -> bool:
    """libvirt answering in the L1; True when libvirtd had to be started. (Its socket
    starts it at the first connection, so asking is enough where the socket is enabled,
    as in nestlab's image; its tables rather than `version`: the L2 network's and the
    L2s' steps ask for them too, so a batch asks once.)"""
    try:
        libvirt_tables(t)
        return False
    except CommandFailed:
        t.check(["systemctl", "start", "libvirtd"])
    libvirt_tables(t)
    return True


QEMU_PROBE = ("/var/cache/libvirt/qemu/capabilities/"
              + hashlib.sha256(b"/usr/bin/qemu-system-x86_64").hexdigest() + ".xml")
"""libvirt's record of what the L1's QEMU can do (the file is named by the SHA-256 of the
emulator's path). libvirt probes QEMU for it at the first domain defined after it starts,
~4 s under emulation, and writes it here; it uses the file only while QEMU's, libvirtd's
and the kernel's versions and the CPU are those it was made with, and probes again
otherwise."""
_HAS_PROBE = ["test", "-s", QEMU_PROBE]
_PROBE_FOLDER = str(Path(QEMU_PROBE).parent)
_NETWORKS_FOLDER = f"{L1_GUEST_DIR}/networks"


def _ensure_folder(t: Transport, path: str) -> None:
    """``path`` made unless it is there. Asked first (``l1_reads`` asks in its batch): a
    command that changes something makes every remembered answer old, a file put there
    only those about it. nestlab's image has the folders it puts files in; an L1 of an
    older image gets them here."""
    if not t.run(["test", "-d", path]).ok:
        t.check(["mkdir", "-p", path])


def learned_probe_path(l1_image: BuiltImage, cpus: int) -> Path:
    """Where L0 keeps libvirt's QEMU probe from an L1 of ``l1_image`` with ``cpus`` vCPUs
    (next to the image: a new image is a new folder). One per vCPU count: the probe holds
    the CPU's CPUID, whose topology leaves (logical processors, cores) follow the count,
    and libvirt probes again when they differ, as an L1 of 2 vCPUs did with the probe of
    an L1 of 1 (each would replace the other's at every `up`)."""
    return l1_image.path / "learned" / f"libvirt-qemu-capabilities-{cpus}cpu.xml"


@dataclass
class QemuProbe:
    """libvirt's QEMU probe for one L1: learned on L0 from the first L1 of its image
    whose probe this `up` caused, and put into later L1s of the image before their first
    define, so that their libvirt need not probe again (libvirt checks that it fits)."""

    images: dict[str, BuiltImage]
    """The lab's images, by name (filled by L0's steps before the L1's run)."""
    l1_image: str
    cpus: int
    """The L1's vCPUs."""
    caused_here: bool = False
    """The L1 had no probe when this `up` began: the one it has after its L2s were
    defined is libvirt's own, made while only nestlab had reached the L1."""

    @property
    def learned(self) -> Path:
        return learned_probe_path(self.images[self.l1_image], self.cpus)


def ensure_qemu_probe(t: Transport, probe: QemuProbe) -> bool:
    """The probe learned on L0 in an L1 that has none yet; True when it was put there."""
    if t.run(_HAS_PROBE).ok:
        return False
    probe.caused_here = True
    if not probe.learned.is_file():
        return False
    _ensure_folder(t, _PROBE_FOLDER)
    t.put_text(probe_to_put(probe.learned.read_text()), QEMU_PROBE, mode=0o600)
    return True


PER_FEATURE_CPU_READ = "<flag name='cpu-unavailable-features'/>"
"""The line of libvirt's probe that records that QEMU reports a CPU's unavailable features.
With it, libvirt 9.0 reads the CPU of each guest it starts one feature at a time: it lists
the CPU object's properties and asks QEMU for each (~400 QMP `qom-get`: 2.5 s of the 5 s
a `virsh start` of an L2 takes in an emulated L1). Without it, libvirt asks for two
properties that hold all of them (`feature-words`, `filtered-features`: 0.06 s), as it
does with a QEMU that does not report unavailable features; QEMU 7.2 answers both, and the
running L2's CPU is the same either way (its live XML, compared in a real L1)."""


def probe_to_put(learned: str) -> str:
    """The learned probe as L0 puts it into an L1: without ``PER_FEATURE_CPU_READ``.
    libvirt checks that a probe fits by QEMU's, libvirtd's and the kernel's versions and
    the CPU, never by the flags recorded in it; where it does not fit, libvirt probes
    again, and the flag is back in that L1 alone (L0 keeps the new probe as libvirt wrote
    it, ``keep_qemu_probe``, and strips it again at its next put)."""
    return "".join(line for line in learned.splitlines(keepends=True)
                   if line.strip() != PER_FEATURE_CPU_READ)


def keep_qemu_probe(t: Transport, probe: QemuProbe) -> bool:
    """The L1's probe kept on L0 when this `up` caused it and it differs from the one L0
    has (none yet, or libvirt found the one put there did not fit and probed again); True
    when L0's changed. Never from an L1 that had its own probe before: whoever has been
    root in that L1 could have written it."""
    if not probe.caused_here:
        return False
    if probe.learned.is_file():  # the one put there is still there: libvirt took it
        have = t.run(["sha256sum", QEMU_PROBE]).stdout.split()
        put = probe_to_put(probe.learned.read_text()).encode()
        if have and have[0] == hashlib.sha256(put).hexdigest():
            return False
    got = t.run(["cat", QEMU_PROBE])
    if not got.ok or not got.stdout.startswith("<qemuCaps>"):
        return False
    probe.learned.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(probe.learned, got.stdout, mode=0o644)
    return True


def _virsh_argv(*args: str) -> list[str]:
    return ["virsh", "-c", "qemu:///system", *args]


def _virsh(t: Transport, *args: str) -> CommandResult:
    return t.run(_virsh_argv(*args), timeout=_VIRSH_TIMEOUT)


_DOMAINS_FOLLOW = "nestlab-domains-follow"
_TABLES = f"net-list --all; echo {_DOMAINS_FOLLOW}; list --all"
_LIBVIRT_TABLES = _virsh_argv(_TABLES)
"""Both of libvirt's tables, networks and domains, from one virsh process (~0.35 s each in
an emulated L1, where the second command in it takes ~10 ms). Neither command fails while
libvirtd answers; the exit status is the domain table's (virsh exits as its last command
did)."""
_TABLES_FOLLOW = "nestlab-tables-follow"


def _act_then_tables(t: Transport, *commands: list[str]) -> tuple[CommandResult,
                                                                  LibvirtTables | None]:
    """Several virsh commands in one virsh process over one connection to libvirt
    (virsh's own ``a; b`` syntax; each virsh process takes ~0.35 s in an emulated L1),
    then libvirt's tables (``_LIBVIRT_TABLES``), read after them in the same process:
    what they did, which the caller checks (virsh goes on after a failed command). The
    tables are None when libvirt did not answer for them. A session that remembers reads
    answers the next read of the tables with these."""
    result = t.run(_virsh_argv("; ".join([*(shlex.join(c) for c in commands),
                                          f"echo {_TABLES_FOLLOW}", _TABLES])),
                   timeout=_VIRSH_TIMEOUT)
    _did, follow, text = result.stdout.partition(f"{_TABLES_FOLLOW}\n")
    tables = _parse_tables(text) if follow and result.ok else None
    if tables is not None and isinstance(t, RememberedReads):
        t.remember(_LIBVIRT_TABLES, CommandResult(shlex.join(_LIBVIRT_TABLES), 0, text, ""))
    return result, tables


@dataclass(frozen=True)
class LibvirtTables:
    networks: str
    """What `virsh net-list --all` prints."""
    domains: str
    """What `virsh list --all` prints."""


def libvirt_tables(t: Transport, timeout: float = _VIRSH_TIMEOUT) -> LibvirtTables:
    """The L1's networks and domains as virsh lists them (``_LIBVIRT_TABLES``). A libvirt
    that does not answer raises ``CommandFailed``."""
    result = t.check(_LIBVIRT_TABLES, timeout=timeout)
    tables = _parse_tables(result.stdout)
    if tables is None:
        raise CommandFailed(t.name, result)
    return tables


def _parse_tables(text: str) -> LibvirtTables | None:
    """What ``_TABLES`` printed, split into its two tables; None without the mark."""
    networks, follow, domains = text.partition(f"{_DOMAINS_FOLLOW}\n")
    return LibvirtTables(networks=networks, domains=domains) if follow else None


def _network_row(table: str, name: str) -> tuple[str, str] | None:
    """(state, autostart) of network ``name`` in `virsh net-list --all`'s table: " Name
    State Autostart Persistent", a rule, then " NAME   active   yes   yes"; None when it is
    not there. (Network names hold no spaces.)"""
    for row in table.splitlines()[2:]:
        columns = row.split()
        if len(columns) == 4 and columns[0] == name:
            return columns[1], columns[2]
    return None


def _not_done(host: HostPlan, what: str, result: CommandResult) -> ProvisionError:
    said = (result.stderr or result.stdout).strip().splitlines()[-5:]
    return ProvisionError(f"{host.name}: could not get {what} in the L1"
                          + (":\n  " + "\n  ".join(said) if said else ""))


def _virsh_check(t: Transport, *args: str, timeout: float = _VIRSH_TIMEOUT) -> CommandResult:
    return t.check(_virsh_argv(*args), timeout=timeout)


def ensure_guest_network(t: Transport, plan: Plan, host: HostPlan) -> bool:
    """The L2 network defined (autostart) and active in the L1; True when it had to act."""
    gnet = host.guest_network
    row = _network_row(libvirt_tables(t).networks, gnet.name)
    todo: list[list[str]] = []
    if row is None:
        xml_path = f"{_NETWORKS_FOLDER}/{gnet.name}.xml"
        _ensure_folder(t, _NETWORKS_FOLDER)
        t.put_text(render_guest_network_xml(plan, host), xml_path)
        todo += [["net-define", xml_path], ["net-autostart", gnet.name]]
    if row is None or row[0] != "active":
        todo.append(["net-start", gnet.name])
    if not todo:
        return False
    after, tables = _act_then_tables(t, *todo)
    now = _network_row(tables.networks, gnet.name) if tables else None
    if now is None or now[0] != "active" or (row is None and now[1] != "yes"):
        raise _not_done(host, f"the L2 network {gnet.name}", after)
    return True


def ensure_routes(t: Transport, host: HostPlan) -> bool:
    """A route in the L1 to each other routed L1's L2 subnet, through that L1; True when
    one had to be added. (Not kept across the L1's reboots: `up`, which an L1's reboot
    needs anyway to start its L2s again, adds them again.)"""
    added = False
    for cidr, via in host.guest_network.routes:
        shown = t.check(["ip", "-4", "route", "show", str(cidr)]).stdout.split()
        if "via" in shown and shown[shown.index("via") + 1] == str(via):
            continue
        t.check(["ip", "-4", "route", "replace", str(cidr), "via", str(via)])
        added = True
    return added


def ensure_guest_image(t: Transport, image: BuiltImage) -> bool:
    """An L2 image's kernel and initrd in the L1 unless identical ones are there, and the
    list of their hashes (``L1_SUMS``) after them; True when it wrote anything. Files that
    the list names with the image's hashes, and that were not modified after it, are not
    hashed again. The kernel an L2 boots is always the plan's ``.../vmlinuz``: the
    image's uncompressed kernel, unpacked from the ``vmlinux.zst`` copied next to it (the
    uncompressed file is 66 MB; copied compressed it is 12 MB, and unpacking it in the L1
    takes 1.2 s), or the bzImage itself for an image without one."""
    sums = l1_sums(image)
    if _listed_unchanged(t, image, sums):
        return False
    digests = [line.split()[0] for line in sums.splitlines()]  # hashed once, on L0
    missing = []
    for (local, remote), digest in zip(_copies(image), digests, strict=True):
        have = t.run(["sha256sum", remote]).stdout.split()
        if not have or have[0] != digest:
            missing.append((local, remote))
    if missing:
        t.check(["mkdir", "-p", _image_folder(image)])
    for local, remote in missing:
        if local == image.vmlinux_zst:
            t.put(local, f"{remote}.new")
            t.check(unpack_kernel_argv(remote, f"{_image_folder(image)}/vmlinuz"))
        else:
            t.put(local, remote)
    t.put_text(sums, _sums_path(image))  # last: it vouches for the files before it
    return True


def _sums_path(image: BuiltImage) -> str:
    return f"{_image_folder(image)}/{L1_SUMS}"


def _listed_reads(image: BuiltImage) -> list[list[str]]:
    """The list of the image's hashes in the L1, and the modification times of its files
    and of the list (``_listed_unchanged``): one `cat` and one `stat`, where hashing the
    files took ~0.35 s of an emulated L1 at every `up`."""
    remotes = [remote for _local, remote in _copies(image)]
    return [["cat", _sums_path(image)], ["stat", "-c", "%Y %n", *remotes, _sums_path(image)]]


def _listed_unchanged(t: Transport, image: BuiltImage, sums: str) -> bool:
    """Whether the L1 lists the image's files with the hashes ``sums`` gives them (nestlab
    wrote the list after it copied or checked them, or the L1's image build did) and none
    of them was modified after the list. Anything else (no list, another image's, a file
    missing or written since) sends the files to be hashed again."""
    cat, stat = (t.run(argv) for argv in _listed_reads(image))
    if not cat.ok or cat.stdout != sums:
        return False
    mtimes = {}
    for line in stat.stdout.splitlines():  # "SECONDS PATH"; stat skips a missing file
        seconds, _, path = line.partition(" ")
        if seconds.isdigit():
            mtimes[path] = int(seconds)
    listed = mtimes.get(_sums_path(image))
    files = [remote for _local, remote in _copies(image)]
    return listed is not None and all(mtimes.get(f, listed + 1) <= listed for f in files)


UNPACK_KERNEL = """zst=$1 kernel=$2
zstd -d -q -f -o "$kernel.new" "$zst.new" &&
  mv -f "$kernel.new" "$kernel" &&
  mv -f "$zst.new" "$zst"
"""
"""The kernel unpacked from ``$zst.new`` (just copied), then the copy renamed to ``$zst``
last: a ``$zst`` that matches the image's implies the kernel was unpacked from it, so an
`up` cut short anywhere here copies and unpacks again."""


def unpack_kernel_argv(zst: str, kernel: str) -> list[str]:
    """The command, run in the L1, that unpacks ``zst``.new into ``kernel``."""
    return ["sh", "-c", UNPACK_KERNEL, "unpack", zst, kernel]


def _image_folder(image: BuiltImage) -> str:
    return f"{L1_GUEST_DIR}/images/{image.name}"


def _copies(image: BuiltImage) -> list[tuple[Path, str]]:
    """(on L0, in the L1) for each file of an L2 image copied into the L1 as it is."""
    return [(local, f"{_image_folder(image)}/{name}") for local, name in l1_copies(image)]


def ensure_guest(t: Transport, plan: Plan, host: HostPlan, guest: GuestPlan,
                 say: Say = lambda _guest, _message: None, redefine: bool = False) -> bool:
    """The L2's disk, definition and running domain (resumed when paused); True when it
    had to act. ``redefine``: its definition changed (the lab file): define it again and
    restart it."""
    folder = str(Path(guest.disk_path).parent)
    acted = False
    # First, while it is answered from the last read of libvirt's tables (the first
    # step's, or the last act's): the disk's creation below makes that read old.
    state = guest_states(t, [guest.domain_name]).get(guest.domain_name)
    defined = state is not None
    if not t.run(["test", "-e", guest.disk_path]).ok:
        t.check(["mkdir", "-p", folder])
        t.check(["qemu-img", "create", "-q", "-f", "qcow2", guest.disk_path, str(guest.disk)])
        acted = True
    todo: list[list[str]] = []
    if not defined or redefine:
        xml_path = f"{folder}/domain.xml"
        xml = render_guest_domain_xml(plan, host, guest)
        if defined:
            xml = with_uuid(xml, _virsh_check(t, "domuuid", guest.domain_name).stdout.strip())
        t.put_text(xml, xml_path)  # in the disk's folder
        todo.append(["define", xml_path])
        state = state or "shut off"
    if redefine and defined and state in ("running", "paused"):
        say(guest.name, "redefined from the lab file: restarting it")
        todo.append(["destroy", guest.domain_name])
        state = "shut off"
    if state == "paused":
        todo.append(["resume", guest.domain_name])
        say(guest.name, "it was paused: resumed")
    elif state != "running":
        todo.append(["start", guest.domain_name])
    if not todo:
        return acted
    after, tables = _act_then_tables(t, *todo)
    states = _domain_states(tables.domains, [guest.domain_name]) if tables else {}
    if states.get(guest.domain_name) != "running":
        raise _not_done(host, f"{guest.name} running", after)
    return True


_STATES_TIMEOUT = 20.0
"""One `virsh list` in a healthy L1 answers in well under a second; `status` must not
hang on an L1 whose libvirtd does not."""


PRIME_ANNOUNCEMENT = "nestlab-prime: up"
"""The line a prime writes on its console once its SSH server runs (images/prime/init)."""
L1_ANNOUNCEMENT = "nestlab-l1: ssh up"
"""The line a Linux L1 writes on its console once its SSH server runs and its network is
up (images/debian-12/files/nestlab-announce.service)."""

_AWAIT_ANNOUNCEMENT = r"""
log=$1 line=$2
size=$(stat -c %s -- "$log" 2>/dev/null || echo 0)
case "$(grep -a -e 'Linux version' -e "$line" -- "$log" 2>/dev/null | tail -n 1)" in
  *"$line"*) exit 0 ;;
esac
tail -c "+$((size + 1))" -F -- "$log" 2>/dev/null | grep -a -q -m 1 -F -- "$line"
"""
"""Exit 0 once a guest's current boot has announced itself on its console: at once when
its last boot's kernel banner is followed by the line already, else as soon as the line
is appended after the size the log had when asked (tail follows the file by inotify: no
polling; coreutils' tail ends as soon as grep has, without a further write). Anything
written after that size is seen, so a line written while this starts is not missed.

What the log holds of earlier boots is what makes "at once" safe. Each start of an L2's
QEMU begins its log anew (``append='off'`` in its domain): its kernel is quiet (no
banner), so with the earlier boots kept, an L2 started again would be "heard" from its
last boot's line before its own, and SSH tried until it came. An L1's log on L0 keeps
its boots (``append='on'``): an L1 restored from its memory is a new QEMU that does not
boot, and is heard from its last announcement; its kernel's banner, the first line of
each boot, tells a boot from the one before (an L1 started again before its banner is
written is "heard" early, and SSH is tried, every second, until it answers)."""


def announcement_watch(console_log: str, line: str, seconds: float) -> list[str]:
    """The command that exits 0 once ``line`` is announced on ``console_log`` (see
    ``_AWAIT_ANNOUNCEMENT``), 124 when ``seconds`` pass first: run on L0 for an L1's
    console, in the L1 for an L2's."""
    argv = ["timeout", str(max(1, int(seconds))), "sh", "-c", _AWAIT_ANNOUNCEMENT, "await",
            console_log, line]
    return argv


def await_announcement(t: Transport, console_log: str, seconds: float) -> bool:
    """Whether the L2 whose console ``console_log`` is announced within ``seconds``
    (the L1 watches the log; an error or the time running out is just False)."""
    return t.run(announcement_watch(console_log, PRIME_ANNOUNCEMENT, seconds),
                 timeout=seconds + 30).ok


def guest_states(t: Transport, domains: list[str]) -> dict[str, str]:
    """Domain name -> state for those of ``domains`` the L1's libvirt has, from one
    `virsh list --all` (one round trip, not one per domain; ``libvirt_tables``). A
    libvirt that does not answer raises ``CommandFailed``: the L2s are then unknown, not
    absent."""
    return _domain_states(libvirt_tables(t, timeout=_STATES_TIMEOUT).domains, domains)


def _domain_states(table: str, domains: list[str]) -> dict[str, str]:
    """Domain name -> state for those of ``domains`` in `virsh list --all`'s table."""
    states = {}
    # " Id   Name   State" and a rule, then " 1    NAME   running" / " -    NAME   shut off".
    # Names may hold spaces and states do ("shut off"): match the names asked for.
    for row in table.splitlines()[2:]:
        _id, _, rest = row.strip().partition(" ")
        rest = rest.strip()
        for name in domains:
            if rest.startswith(name + " "):
                states[name] = rest[len(name):].strip()
    return states


def remove_guests(t: Transport, host: HostPlan) -> None:
    """L2s first on `down`: stop and undefine them inside a running L1."""
    for guest in host.guests:
        if _virsh(t, "dominfo", guest.domain_name).ok:
            _virsh(t, "destroy", guest.domain_name)
            _virsh(t, "undefine", guest.domain_name)


def stop_guests(t: Transport, domains: list[str], timeout: float,
                interval: float = 1.0) -> list[str]:
    """Shut the running ones of ``domains`` down through their own shutdown (ACPI, `virsh
    shutdown`), wait up to ``timeout`` seconds for them to be off, then power off
    (`destroy`) those still running; returns those. One `virsh list` per poll."""
    states = guest_states(t, domains)
    running = [d for d, s in states.items() if s != "shut off"]
    for name in running:
        if states[name] == "paused":
            _virsh_check(t, "resume", name)  # a paused guest cannot act on ACPI
        _virsh(t, "shutdown", name)
    try:
        wait_for(lambda: _all_off(t, running), timeout=timeout, interval=interval,
                 what="the L2s' shutdown")
        return []
    except WaitTimedOut:
        forced = [d for d, s in guest_states(t, running).items() if s != "shut off"]
        for name in forced:
            _virsh_check(t, "destroy", name)
        return forced
    finally:
        t.run(["sync"])  # what the L2s wrote is on the L1's disk before the L1 stops


def pause_guests(t: Transport, domains: list[str]) -> list[str]:
    """`virsh suspend` of the running ones of ``domains``; returns those."""
    return _virsh_each(t, domains, "running", "suspend")


def resume_guests(t: Transport, domains: list[str]) -> list[str]:
    """`virsh resume` of the paused ones of ``domains``; returns those."""
    return _virsh_each(t, domains, "paused", "resume")


def _virsh_each(t: Transport, domains: list[str], state: str, verb: str) -> list[str]:
    """`virsh VERB` of each of ``domains`` that is in ``state`` (one `virsh list` to tell);
    returns those."""
    found = [d for d, s in guest_states(t, domains).items() if s == state]
    for name in found:
        _virsh_check(t, verb, name)
    return found


def set_clock(t: Transport) -> None:
    """The guest's clock to L0's now (GNU's and busybox's `date` both take @SECONDS)."""
    t.check(["date", "-u", "-s", f"@{int(time.time())}"])


def _all_off(t: Transport, domains: list[str]) -> bool:
    still = [d for d, s in guest_states(t, domains).items() if s != "shut off"]
    if still:
        raise NotYet(f"{', '.join(still)} still running")
    return True


def restart_guest(t: Transport, host: HostPlan, guest: GuestPlan) -> None:
    """Power the L2 off (when it runs) and start it again: a new boot of the same disk."""
    _require_defined(t, host, guest)
    if _virsh_check(t, "domstate", guest.domain_name).stdout.strip() != "shut off":
        _virsh_check(t, "destroy", guest.domain_name)
    _virsh_check(t, "start", guest.domain_name)


def remove_guest(t: Transport, guest: GuestPlan) -> list[str]:
    """The L2 gone from the L1 with its disk, so that `ensure_guest` makes it afresh;
    returns what was removed (``domain``, ``disk``)."""
    removed = []
    if _virsh(t, "dominfo", guest.domain_name).ok:
        if _virsh_check(t, "domstate", guest.domain_name).stdout.strip() != "shut off":
            _virsh_check(t, "destroy", guest.domain_name)
        _virsh_check(t, "undefine", guest.domain_name)
        removed.append("domain")
    if t.run(["test", "-e", guest.disk_path]).ok:
        t.check(["rm", "-f", guest.disk_path])
        removed.append("disk")
    return removed


def _require_defined(t: Transport, host: HostPlan, guest: GuestPlan) -> None:
    if not _virsh(t, "dominfo", guest.domain_name).ok:
        raise ProvisionError(f"{guest.name} is not defined in {host.name}",
                             hint="`nestlab up` defines and starts it.")
