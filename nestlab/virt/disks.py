"""An L1's files on L0: a qcow2 overlay over the cached base (never a copy), its kernel
and initrd (Linux, direct kernel boot; links to the cached image's), its seed or
answer medium, and for a Windows L1 the prime ISOs of its L2s."""

from __future__ import annotations

import filecmp
import os
import subprocess
from pathlib import Path

from nestlab.build.answerfile import write_l1_medium
from nestlab.build.images import BuiltImage
from nestlab.build.primeiso import prime_cmdline, write_prime_iso
from nestlab.build.seed import write_seed_iso
from nestlab.errors import NestlabError
from nestlab.files import write_atomic
from nestlab.plan import GuestPlan, HostPlan
from nestlab.state.keys import new_host_key, repin_host_keys
from nestlab.virt import layers


def ensure_host_dir(host: HostPlan, mode: int) -> bool:
    """The L1's folder on L0: 0700, or 0711 (enter, not list) where QEMU runs as its own
    user and must reach the disk inside. True when it had to be made."""
    folder = host.disk_path.parent
    made = not folder.exists()
    folder.mkdir(mode=mode, parents=True, exist_ok=True)
    folder.chmod(mode)
    return made


def ensure_overlay(host: HostPlan, base: BuiltImage) -> bool:
    """Create the overlay (0600: it will hold the L1's host keys or its SAM) if missing;
    True when created. An existing one is kept as is (a freeze cut short is finished:
    the L1 never runs on a frozen layer). On an L1 with a baseline (``layers``) a
    missing top is made on the baseline, not on the base image."""
    if host.disk_path.exists():
        return layers.finish_interrupted(host)
    if layers.baseline_path(host).exists():
        layers.new_top(host, layers.baseline_path(host))
        return True
    if base.disk is None:
        raise NestlabError(f"image {base.name} has no disk to boot {host.name} from")
    tmp = host.disk_path.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    result = subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base.disk),
         str(tmp), str(host.disk)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise NestlabError(f"{host.name}: cannot create its disk: {result.stderr.strip()}")
    tmp.chmod(0o600)
    tmp.rename(host.disk_path)
    return True


def ensure_console_log(host: HostPlan) -> bool:
    """The L1's serial console log (0600: a console can show secrets); True when made."""
    try:
        fd = os.open(host.console_log, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     0o600)
    except FileExistsError:
        host.console_log.chmod(0o600)
        return False
    os.close(fd)
    return True


def ensure_boot_files(host: HostPlan, base: BuiltImage) -> bool:
    """The image's kernel and initrd next to the overlay, kept in sync with the image: hard
    links to the cached image's files (a cached image never changes: a new recipe is a
    new folder), so an extra L1 costs no copy of them; a copy only where no link can be
    made. True when one was made. The kernel is the image's uncompressed one where it has
    one (booted by PVH, nothing decompressed at boot), under the plan's name ``vmlinuz``."""
    acted = False
    kernel, initrd = base.boot_files()
    for source, target in ((kernel, host.kernel), (initrd, host.initrd)):
        if target.exists() and (target.samefile(source)
                                or filecmp.cmp(source, target, shallow=False)):
            continue
        _link_or_copy(source, target)
        acted = True
    return acted


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` made a hard link to ``source`` (atomically: a temporary name, then a
    rename), or a copy of it where the link is refused (another file system; Linux's
    fs.protected_hardlinks for a file of another user)."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        os.link(source, partial)
    except OSError:
        write_atomic(target, source.read_bytes(), mode=0o644)
        return
    os.replace(partial, target)


def ensure_seed(host: HostPlan, public_key: str, lab_dir: Path) -> bool:
    """The first-boot medium: hostname, the lab's public key and the L1's SSH host key
    (0600: it holds that key), whose public half is pinned first, so that the L1's first
    answer is already checked."""
    if host.seed_path.exists():
        return False
    private, known = new_host_key(host.name)
    repin_host_keys(lab_dir, [host.name], known)
    write_seed_iso(host.seed_path, {"hostname": host.name + "\n",
                                    "authorized_keys": public_key + "\n",
                                    "ssh_host_ed25519_key": private,
                                    "ssh_host_ed25519_key.pub": known.split(" ", 1)[1]},
                   mode=0o600)
    return True


def ensure_answer_medium(host: HostPlan, password: str) -> bool:
    """A Windows L1's first-boot answer file (0600: it holds the L1's password)."""
    if host.seed_path.exists():
        return False
    write_l1_medium(host.seed_path, host.name, password)
    return True


def prime_iso_path(host: HostPlan, guest: GuestPlan) -> Path:
    return host.disk_path.parent / "guests" / f"{guest.name}.iso"


def ensure_prime_iso(host: HostPlan, guest: GuestPlan, image: BuiltImage,
                     public_key: str) -> Path:
    """The bootable ISO of one L2 under Hyper-V, with its static address (WinNAT has no
    DHCP). Written once: its content is what the L1's copy is compared with."""
    path = prime_iso_path(host, guest)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        gnet = host.guest_network
        address = gateway = None
        if gnet.cidr is not None:
            address, gateway = f"{guest.ip}/{gnet.cidr.prefixlen}", str(gnet.gateway)
        write_prime_iso(path, image, prime_cmdline(guest.name, public_key, address, gateway))
    return path


def rebuild_files(host: HostPlan) -> list[Path]:
    """The L1's files on L0 that a rebuild makes anew: its overlay (and a partial one),
    its baseline and snapshot layers with their memory states (they hold the old L1),
    kernel and initrd, seed or answer medium, its L2s' prime ISOs. Its console log is
    kept: the new L1's boot follows the old one's lines."""
    return [host.disk_path, host.disk_path.with_suffix(".partial"), host.kernel, host.initrd,
            host.seed_path, *(prime_iso_path(host, guest) for guest in host.guests),
            *(path for layer in [*(layers.snapshot_path(host, name)
                                   for name in layers.snapshot_names(host)),
                                 layers.baseline_path(host)]
              for path in (layer, layers.pins_path(layer), layers.state_path(layer)))]


def remove_rebuild_files(host: HostPlan) -> list[Path]:
    """Delete ``rebuild_files`` (the L1's domain must be gone); returns those that existed."""
    removed = []
    for path in rebuild_files(host):
        if path.exists() or path.is_symlink():
            path.unlink()
            removed.append(path)
    return removed
