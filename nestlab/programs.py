"""Every program nestlab runs on L0 or has run for it, and the Debian package providing it.

One list, so that the Makefile's DEBS, the host check and the "install X" hints
cannot drift apart: tests check each entry against ``dpkg -S`` and the Makefile
(tests/integration/test_debian_packages.py), and that every program the code runs
is listed here (tests/unit/test_programs.py). Programs run inside an L1 (virsh and
systemctl there) come with the L1 image, not from this list.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

# Debian puts daemons and admin tools in sbin, which a user's PATH often lacks.
_DEBIAN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class RunBy(StrEnum):
    """Who starts the program."""

    NESTLAB = "nestlab"
    LIBVIRT = "libvirt"
    """libvirtd, for the lab's domains and networks: nestlab never names it, but needs it."""
    TESTS = "tests"
    """The test suite, or a program the tests run."""
    PIP = "pip"
    """Installing nestlab: libvirt-python has no wheels, pip compiles it."""


class Need(StrEnum):
    """What stops working without the program."""

    UP = "nestlab up"
    FIREWALL = "libvirt's lab networks (unless libvirt uses firewalld)"
    SANDBOX = "nestlab up --sandbox"
    IMAGES = "nestlab image build"
    ACCESS = "nestlab ssh / console"
    TESTS = "make test"
    INSTALL = "pip install nestlab"


RUNTIME_NEEDS = frozenset({Need.UP, Need.FIREWALL, Need.SANDBOX, Need.IMAGES, Need.ACCESS})
"""Needs of nestlab itself on L0 (what ``nestlab facts`` looks for), as opposed to its tests."""


@dataclass(frozen=True)
class Program:
    name: str
    package: str
    """The Debian package that ships it (``dpkg -S``), the one to ``apt-get install``."""
    run_by: RunBy
    needs: tuple[Need, ...]
    why: str

    @property
    def runtime(self) -> bool:
        return any(need in RUNTIME_NEEDS for need in self.needs)


PROGRAMS: tuple[Program, ...] = (
    Program("qemu-img", "qemu-utils", RunBy.NESTLAB, (Need.UP, Need.IMAGES),
            "creates each L1's disk overlay and converts built images"),
    Program("qemu-system-x86_64", "qemu-system-x86", RunBy.LIBVIRT, (Need.UP, Need.TESTS),
            "runs the L1 guests (the system tests also boot the prime with it)"),
    Program("dnsmasq", "dnsmasq-base", RunBy.LIBVIRT, (Need.UP,),
            "DHCP and DNS on every lab network (libvirt-daemon-system only recommends it)"),
    Program("iptables", "iptables", RunBy.LIBVIRT, (Need.FIREWALL,),
            "libvirt's firewall rules for NAT and isolated networks"),
    Program("ip", "iproute2", RunBy.NESTLAB, (Need.SANDBOX, Need.TESTS),
            "creates, enters and deletes the sandbox's network namespace"),
    Program("libvirtd", "libvirt-daemon", RunBy.NESTLAB, (Need.SANDBOX,),
            "the sandbox's private libvirt daemon"),
    Program("virtlogd", "libvirt-daemon", RunBy.NESTLAB, (Need.SANDBOX,),
            "logs the sandbox's QEMU output"),
    Program("mount", "mount", RunBy.NESTLAB, (Need.SANDBOX, Need.IMAGES),
            "the sandbox's private view of libvirt's folders; mmdebstrap mounts /proc "
            "and /dev in its chroot"),
    Program("mmdebstrap", "mmdebstrap", RunBy.NESTLAB, (Need.IMAGES,),
            "builds the debian-12 and prime images from Debian packages"),
    Program("mkfs.ext4", "e2fsprogs", RunBy.NESTLAB, (Need.IMAGES,),
            "makes the L1 image's root file system from a folder"),
    Program("zstd", "zstd", RunBy.NESTLAB, (Need.IMAGES,),
            "compresses the L2 image's uncompressed kernel, copied into each L1"),
    Program("ssh", "openssh-client", RunBy.NESTLAB, (Need.ACCESS,),
            "nestlab ssh and the console of an L2"),
    Program("virsh", "libvirt-clients", RunBy.NESTLAB, (Need.ACCESS,),
            "nestlab console of an L1"),
    Program("virt-xml-validate", "libvirt-clients", RunBy.TESTS, (Need.TESTS,),
            "validates the rendered XML against libvirt's schemas"),
    Program("xmllint", "libxml2-utils", RunBy.TESTS, (Need.TESTS,),
            "run by virt-xml-validate (libvirt-clients only recommends it)"),
    Program("qemu-io", "qemu-utils", RunBy.TESTS, (Need.TESTS,),
            "writes and reads guest data through a disk's layers (tests/unit/test_layers.py)"),
    Program("blkid", "util-linux", RunBy.TESTS, (Need.TESTS,),
            "reads the labels of the generated seed and answer media"),
    Program("cpio", "cpio", RunBy.TESTS, (Need.TESTS,),
            "lists the prime's initramfs"),
    Program("timeout", "coreutils", RunBy.NESTLAB, (Need.UP,),
            "bounds `up`'s watch of a Linux L1's console log for its announcement that "
            "SSH can be reached (a sh script of coreutils' stat and tail -F, and grep: "
            "Essential packages)"),
    Program("sh", "dash", RunBy.TESTS, (Need.TESTS,),
            "runs the prime's network script with stand-ins for ip and udhcpc"),
    Program("chroot", "coreutils", RunBy.TESTS, (Need.TESTS,),
            "runs the prime's own host-key script inside its initramfs"),
    Program("sha256sum", "coreutils", RunBy.TESTS, (Need.TESTS,),
            "prints the list of an L2 image's hashes an L1 keeps beside it, as nestlab "
            "writes it"),
    Program("make", "make", RunBy.TESTS, (Need.TESTS,),
            "runs the Makefile `nestlab init` writes (.ci/run installs it first)"),
    Program("git", "git", RunBy.TESTS, (Need.TESTS,),
            "lists the files a clone has, from which the wheel test builds the wheel"),
    Program("pgrep", "procps", RunBy.TESTS, (Need.TESTS,),
            "finds processes a lab left behind"),
    Program("make", "make", RunBy.TESTS, (Need.TESTS,),
            "dry-runs `make acceptance-windows` to see which image and lab it picks"),
    Program("apt-cache", "apt", RunBy.TESTS, (Need.TESTS,),
            "lists the Depends of the Makefile's DEBS"),
    Program("dpkg", "dpkg", RunBy.TESTS, (Need.TESTS,),
            "names the package that owns each program (dpkg -S)"),
    Program("dpkg-query", "dpkg", RunBy.TESTS, (Need.TESTS,),
            "lists the Essential packages (`make system-deps` also asks it what is installed)"),
    Program("sshd", "openssh-server", RunBy.TESTS, (Need.TESTS,),
            "serves each node of the test fleet (tests/system/fleet.py), which nestlab "
            "reaches with qemu+ssh:// as it would a real host"),
    Program("ssh-keygen", "openssh-client", RunBy.TESTS, (Need.TESTS,),
            "makes the test fleet's key and its nodes' host keys"),
    Program("virt-ssh-helper", "libvirt-daemon", RunBy.TESTS, (Need.TESTS,),
            "relays libvirt's qemu+ssh:// on a node (a Depends of libvirt-daemon-system, "
            "checked here because the fleet's nodes run it)"),
    Program("gcc", "gcc", RunBy.PIP, (Need.INSTALL, Need.TESTS),
            "compiles libvirt-python"),
    Program("pkg-config", "pkgconf", RunBy.PIP, (Need.INSTALL, Need.TESTS),
            "finds libvirt's headers for libvirt-python (Debian's pkg-config package "
            "depends on pkgconf, which ships it)"),
)


def program(name: str) -> Program:
    """The entry for one program; a name not listed is a programming error."""
    for entry in PROGRAMS:
        if entry.name == name:
            return entry
    raise KeyError(f"{name} is not in nestlab.programs.PROGRAMS")


def programs_for(need: Need) -> tuple[Program, ...]:
    return tuple(p for p in PROGRAMS if need in p.needs)


def runtime_programs() -> tuple[Program, ...]:
    """What nestlab itself needs on L0: the programs ``nestlab facts`` looks for."""
    return tuple(p for p in PROGRAMS if p.runtime)


def locate(name: str) -> str | None:
    """Where the program is: on PATH, or in Debian's sbin/bin folders that PATH may lack."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_DEBIAN_DIRS])
    return shutil.which(name, path=path)


def missing(need: Need) -> tuple[Program, ...]:
    """The programs ``need`` requires that this machine lacks."""
    return tuple(p for p in programs_for(need) if locate(p.name) is None)


def install_command(programs: Iterable[Program]) -> str:
    """The exact command that installs the programs' packages."""
    return "sudo apt-get install " + " ".join(sorted({p.package for p in programs}))
