"""The real prime image: the ISO a Hyper-V Generation 1 VM boots (BIOS, IDE CD) comes
up with its static address under QEMU, and its initramfs carries Hyper-V's drivers.
QEMU runs with an isolated NIC (a hub with no other port): no traffic leaves it."""

from __future__ import annotations

import gzip
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from nestlab.build.images import require_image
from nestlab.build.primeiso import prime_cmdline, write_prime_iso
from tests.system.conftest import Nestlab

pytestmark = pytest.mark.system


def test_prime_iso_boots_with_a_static_address(nestlab: Nestlab, images: None,
                                               tmp_path: Path) -> None:
    image = require_image("prime")
    iso = tmp_path / "prime1.iso"
    write_prime_iso(iso, image, prime_cmdline("prime1", "ssh-ed25519 AAAA test",
                                              "192.168.100.10/24", "192.168.100.1"))
    console = tmp_path / "console.log"
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-machine", "pc",
         "-drive", f"file={iso},media=cdrom,if=ide,readonly=on", "-boot", "d",
         "-display", "none", "-serial", f"file:{console}", "-monitor", "none",
         "-netdev", "hubport,id=n0,hubid=0", "-device", "virtio-net-pci,netdev=n0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        text = ""
        while time.monotonic() < deadline and "nestlab-prime: up" not in text:
            time.sleep(1)
            text = console.read_text(errors="replace") if console.exists() else ""
        assert "nestlab-prime: up" in text, text[-2000:]
        assert "nestlab-prime: eth0 192.168.100.10/24 (static)" in text
        assert "nestlab.hostname=prime1" in text  # the kernel saw isolinux's command line
    finally:
        qemu.kill()
        qemu.wait()


def test_debian_makes_one_initramfs_for_the_l1_image_and_none_for_the_prime(
        images: None) -> None:
    """Debian's kernel and initramfs-tools make one at each step of their installation,
    20 s each: the builds make only the one the L1 image boots (after its recipe chose its
    modules), and none for the prime, which has its own."""
    def log(name: str) -> str:
        return (require_image(name).path / "build.log").read_text(errors="replace")

    put_off = "put off while the packages were installed: update-initramfs"
    for name in ("debian-12", "prime"):  # the kernel's hook (-c) and the trigger (-u)
        assert f"{put_off} -c -k " in log(name)
        assert f"{put_off} -u" in log(name)
    assert log("debian-12").count("update-initramfs: Generating") == 1  # customize.sh's
    assert "update-initramfs: Generating" not in log("prime")


def test_initramfs_has_hyperv_and_virtio_drivers(images: None) -> None:
    image = require_image("prime")
    _kernel, initrd = image.boot_files()
    listing = subprocess.run(["cpio", "-t", "--quiet"], input=gzip.decompress(
        initrd.read_bytes()), capture_output=True, check=True).stdout.decode()
    modules = {Path(line).name for line in listing.splitlines() if line.endswith(".ko")}
    assert {"hv_vmbus.ko", "hv_netvsc.ko", "hv_storvsc.ko", "hv_utils.ko",
            "virtio_net.ko", "virtio_pci.ko"} <= modules
    assert "init" in listing.splitlines() or "./init" in listing.splitlines()


def test_the_host_key_is_kept_on_the_guests_disk(images: None, tmp_path: Path) -> None:
    """Runs the prime's own hostkey.sh (busybox, dropbearkey) in a chroot of its initramfs
    with a file as the guest's disk: a restart reads the key it made at its first boot."""
    _kernel, initrd = require_image("prime").boot_files()
    tree = tmp_path / "tree"
    tree.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], input=gzip.decompress(initrd.read_bytes()),
                   cwd=tree, check=True)
    (tree / "disk").write_bytes(bytes(1 << 20))
    (tree / "dev").mkdir(exist_ok=True)  # at boot, /init mounts devtmpfs there
    for name, minor in (("null", 3), ("random", 8), ("urandom", 9)):
        os.mknod(tree / "dev" / name, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    script = ("export PATH=/sbin:/bin; /bin/busybox --install -s /bin; . /etc/hostkey.sh; "
              "prime_hostkey /disk /k1; prime_hostkey /disk /k2; prime_hostkey '' /k3; "
              "for k in /k1 /k2 /k3; do dropbearkey -y -f $k | grep '^ssh-'; done")
    run = subprocess.run(["chroot", str(tree), "/bin/busybox", "sh", "-c", script],
                         capture_output=True, text=True, check=True)
    lines = run.stdout.splitlines()
    assert lines[:3] == ["nestlab-prime: new host key, kept on /disk",
                         "nestlab-prime: host key from /disk",
                         "nestlab-prime: no disk: the host key is new at every boot"]
    first, second, diskless = (line.split()[:2] for line in lines[3:6])
    assert first[0] == "ssh-ed25519"
    assert second == first  # the same key after a "restart"
    assert diskless != first
    assert (tree / "disk").read_bytes().startswith(b"NESTLAB-HOSTKEY1")
