"""Build and find base images from the recipes in ``images/`` (the nestlab.recipes package).

An image is cached under ``cache_root()/images/NAME/KEY`` where KEY hashes the
recipe's files: building again with nothing changed is a no-op, and a changed
recipe builds next to the old image instead of over it. Builds happen in a
``.partial`` folder that is renamed only when complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from nestlab import programs
from nestlab.build.kernel import write_pvh_vmlinux
from nestlab.errors import InputError, NestlabError
from nestlab.files import read_bounded_text, write_atomic
from nestlab.lab.systems import WINDOWS_IMAGES
from nestlab.programs import Need
from nestlab.state.paths import cache_root
from nestlab.together import Together

Progress = Callable[[str], None]
SUITE = "bookworm"  # Debian 12; packages come from the host's configured apt sources
L1_DISK_SIZE = 3 * 1024**3
L1_GUEST_DIR = "/var/lib/nestlab"
"""Inside a Linux L1, where nestlab keeps the L2 images (some come with the L1 image:
``GUEST_IMAGES_IN``) and the L2s' disks."""
# Images built from something the user provides, with how to build them.
EXTERNAL_IMAGES = {name: f"nestlab image build {name} --iso PATH" for name in WINDOWS_IMAGES}


class ImageBuildError(NestlabError):
    """An image could not be built; the message names the step and the log."""


@dataclass(frozen=True)
class BuiltImage:
    name: str
    key: str
    path: Path
    kernel: Path | None
    """None for an image that boots from its disk (Windows)."""
    initrd: Path | None
    disk: Path | None
    size: int
    seconds: float
    built: str
    vmlinux: Path | None = None
    """The kernel uncompressed, when it has a PVH entry (nestlab.build.kernel): what a
    guest boots instead of ``kernel``, without decompressing it first."""
    vmlinux_zst: Path | None = None
    """``vmlinux`` compressed with zstd (an L2 image's: copied into each L1, unpacked there
    in about a second, where the kernel's own xz took ~4 s at every boot)."""

    def boot_files(self) -> tuple[Path, Path]:
        """(kernel, initrd) QEMU boots a guest of this image from: the uncompressed kernel
        where there is one."""
        kernel, initrd = self.bzimage_files()
        return self.vmlinux or kernel, initrd

    def bzimage_files(self) -> tuple[Path, Path]:
        """(kernel, initrd) as the image's kernel package made them (a boot loader's)."""
        if self.kernel is None or self.initrd is None:
            raise NestlabError(f"image {self.name} boots from its disk; it has no kernel to "
                               "boot directly")
        return self.kernel, self.initrd

    def to_json(self) -> dict[str, object]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def recipe_dir(name: str) -> Path:
    """Where a recipe's files are (installed with the package)."""
    path = Path(str(resources.files("nestlab.recipes"))) / name
    if not (path / "packages").is_file():
        known = ", ".join(recipe_names())
        raise NestlabError(f"no image recipe named {name!r}", hint=f"Known recipes: {known}.")
    return path


def recipe_names() -> list[str]:
    root = Path(str(resources.files("nestlab.recipes")))
    return sorted(p.parent.name for p in root.glob("*/packages"))


BUILD_FORMAT = "4: the L2 image listed by its hashes in the L1 image"
"""What an image folder holds besides the recipe's output, and how it is made; changed when
a build makes new files or makes them differently (then every image is built again, next
to the old ones). 3: Debian's initramfs made once (INITRAMFS_AT_THE_END), vmlinux.zst at
zstd's level 9."""


def recipe_key(path: Path) -> str:
    """A hash of every file of the recipe (its name, mode and content) and the build
    format."""
    digest = hashlib.sha256(f"{SUITE}\0{BUILD_FORMAT}".encode())
    for file in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        digest.update(oct(file.stat().st_mode & 0o777).encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


GUEST_IMAGES_IN = {"debian-12": ("prime",)}
"""The L2 images whose files an L1 image carries (see ``_bake_guest_image``): its key
includes theirs, so a new L2 recipe builds the L1 image again too."""


def image_key(name: str) -> str:
    """The cache key of a recipe's image: its recipe's, and those of the L2 images it
    carries."""
    key = recipe_key(recipe_dir(name))
    carried = GUEST_IMAGES_IN.get(name, ())
    if not carried:
        return key
    parts = [key, *(f"{guest}:{image_key(guest)}" for guest in carried)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    """Lower-case hex SHA-256 of a file (what sha256sum and Get-FileHash compare with)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def packages(path: Path) -> list[str]:
    lines = (line.split("#")[0].strip() for line in (path / "packages").read_text().splitlines())
    return [line for line in lines if line]


def images_root() -> Path:
    return cache_root() / "images"


def find_image(name: str) -> BuiltImage | None:
    """The image built from the current recipe, if there is one.

    Images built from an input nestlab does not have (a Windows ISO) have no
    recipe to key them: the newest one built is used.
    """
    if name in EXTERNAL_IMAGES:
        built = [i for i in list_images() if i.name == name]
        return max(built, key=lambda i: i.built) if built else None
    manifest = images_root() / name / image_key(name) / "manifest.json"
    return read_manifest(manifest) if manifest.is_file() else None


def require_image(name: str) -> BuiltImage:
    image = find_image(name)
    if image is None:
        how = EXTERNAL_IMAGES.get(name, f"nestlab image build {name}")
        raise NestlabError(f"image {name} is not built", hint=f"Build it: {how}")
    return image


def write_manifest(folder: Path, image: BuiltImage) -> None:
    write_atomic(folder / "manifest.json", json.dumps(image.to_json(), indent=2) + "\n",
                 mode=0o644)


def list_images() -> list[BuiltImage]:
    """Every image in the cache, current recipe or not."""
    return [
        image
        for manifest in sorted(images_root().glob("*/*/manifest.json"))
        if (image := read_manifest(manifest)) is not None
    ]


def read_manifest(path: Path) -> BuiltImage | None:
    """The image a manifest describes; None when it is damaged (the image is then rebuilt)
    or names files outside its own folder (a manifest never points elsewhere)."""
    try:
        data = json.loads(read_bounded_text(path, 64 * 1024, "image manifest"))
        folder = path.parent

        def own(key: str) -> Path | None:
            value = data.get(key)
            if not value:
                return None
            # Only the file's name counts: it is looked up in the manifest's own folder, so
            # a manifest can never point nestlab at a file elsewhere (and a moved cache works).
            file = folder / Path(str(value)).name
            if not file.is_file() or file.is_symlink():
                raise ValueError(f"{key} is not a file of {folder}")
            return file

        return BuiltImage(
            name=str(data["name"]), key=str(data["key"]), path=folder,
            kernel=own("kernel"), initrd=own("initrd"), disk=own("disk"),
            size=int(data["size"]), seconds=float(data["seconds"]), built=str(data["built"]),
            vmlinux=own("vmlinux"), vmlinux_zst=own("vmlinux_zst"),
        )
    except (InputError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def build_image(name: str, progress: Progress = lambda _msg: None) -> tuple[BuiltImage, bool]:
    """Build the named image unless the current recipe's is cached. Returns (image, built).

    An image built from the user's own input (a Windows ISO) cannot be built here: it
    must already be in the cache, or the error says how to build it.
    """
    if name in EXTERNAL_IMAGES:
        return require_image(name), False
    existing = find_image(name)
    if existing is not None:
        return existing, False
    _require_tools()
    # The L2 images this image carries are built (or found) while its own packages are
    # installed; its build waits for them only where it lays them into its tree.
    guests = GUEST_IMAGES_IN.get(name, ())
    carried = Together(guests, lambda guest: build_image(guest, _prefixed(progress, guest))[0],
                       "carried image")
    carried.start()
    (images_root() / name).mkdir(parents=True, exist_ok=True)
    with _build_lock(name):
        existing = find_image(name)  # built by another build while this one waited
        if existing is not None:
            return existing, False
        return _build(name, lambda: [carried.result(guest) for guest in guests], progress), True


def _prefixed(progress: Progress, name: str) -> Progress:
    return lambda message: progress(f"{name}: {message}")


@contextlib.contextmanager
def _build_lock(name: str) -> Iterator[None]:
    """One build of an image at a time, across threads and processes (an L1 image's build
    builds the L2 image it carries, which a concurrent build may be building too)."""
    with (images_root() / name / ".build.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


Carried = Callable[[], Sequence[BuiltImage]]
"""The L2 images an L1 image's build lays into its tree, waited for when it does."""


def _build(name: str, carried: Carried, progress: Progress) -> BuiltImage:
    recipe = recipe_dir(name)
    key = image_key(name)
    final = images_root() / name / key
    partial = Path(tempfile.mkdtemp(prefix=f"{key}.", suffix=".partial", dir=final.parent))
    log = partial / "build.log"
    started = time.monotonic()
    try:
        if name == "prime":
            _build_prime(recipe, partial, log, progress)
        else:
            _build_disk_image(recipe, partial, log, progress, carried)
        vmlinux = _uncompressed_kernel(name, partial, log, progress)
        disk = partial / "disk.qcow2"
        image = BuiltImage(
            name=name, key=key, path=final,
            kernel=final / "vmlinuz", initrd=final / "initrd.img",
            vmlinux=final / "vmlinux" if vmlinux else None,
            vmlinux_zst=final / "vmlinux.zst" if (partial / "vmlinux.zst").exists() else None,
            disk=final / "disk.qcow2" if disk.exists() else None,
            size=sum(p.stat().st_size for p in partial.iterdir() if p.is_file()),
            seconds=round(time.monotonic() - started, 1),
            built=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        write_manifest(partial, image)
        for file in partial.iterdir():
            file.chmod(0o644)
        partial.chmod(0o755)
        os.replace(partial, final)
    except BaseException:
        kept = log.read_text(errors="replace")[-4000:] if log.exists() else ""
        shutil.rmtree(partial, ignore_errors=True)
        if kept:
            failed_log = final.parent / f"{key}.failed.log"
            failed_log.write_text(kept)
        raise
    return image


class ConcurrentBuilds:
    """The images one command needs, those not cached built at the same time: each build
    spends much of its time waiting for downloads and disk, so two overlap well even on
    two cores. The first ``result`` starts every build; each ``result`` waits for its own
    image (its build's error is raised there, the others go on)."""

    def __init__(self, names: Sequence[str], progress: Callable[[str, str], None]) -> None:
        self._builds = Together(
            names, lambda name: build_image(name, functools.partial(progress, name)),
            "image")

    def result(self, name: str) -> tuple[BuiltImage, bool]:
        """(image, built now) for one of the names."""
        return self._builds.result(name)


def _require_tools() -> None:
    """Refuse before a long build starts, naming each missing program's Debian package."""
    lacking = programs.missing(Need.IMAGES)
    if lacking:
        raise ImageBuildError(
            f"building images needs: {', '.join(p.name for p in lacking)}",
            hint=programs.install_command(lacking),
        )


def _run(step: str, argv: list[str], log: Path, progress: Progress) -> None:
    progress(step)
    started = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n### {step}: {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
        out.write(f"### {step}: exit {result.returncode} after "
                  f"{time.monotonic() - started:.1f} s\n")
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ImageBuildError(f"image build failed at '{step}' (exit {result.returncode}):\n"
                              f"{tail}")


def _uncompressed_kernel(name: str, out: Path, log: Path, progress: Progress) -> bool:
    """``vmlinux`` next to the image's ``vmlinuz`` when it boots by PVH, and for the L2
    image (copied into L1s) ``vmlinux.zst`` too; True when made."""
    if not write_pvh_vmlinux(out / "vmlinuz", out / "vmlinux"):
        with log.open("a") as handle:
            handle.write("\n### vmlinuz has no PVH entry (or an unknown compression): "
                         "it is booted as it is\n")
        return False
    if name == "prime":
        _run("zstd the uncompressed kernel", [
            "zstd", "-q", "-9", "-T0", str(out / "vmlinux"), "-o", str(out / "vmlinux.zst"),
        ], log, progress)
    return True


PUT_OFF = "/var/lib/nestlab-initramfs-put-off"
INITRAMFS_AT_THE_END = (
    # Before the packages: update-initramfs is diverted, and a stand-in takes its place
    # while the kernel and initramfs-tools are installed; it only notes that it was asked.
    "--essential-hook=chroot \"$1\" dpkg-divert --quiet --local --rename"
    " --divert /usr/sbin/update-initramfs.nestlab-later --add /usr/sbin/update-initramfs"
    f" && printf '#!/bin/sh\\necho \"update-initramfs $*\" >> {PUT_OFF}\\n'"
    " > \"$1/usr/sbin/update-initramfs\" && chmod 0755 \"$1/usr/sbin/update-initramfs\"",
    # After them, the real one is back, for the recipe's own hook to run once; the build
    # log says what was put off.
    f"--customize-hook=if [ -f \"$1{PUT_OFF}\" ]; then"
    f" sed 's/^/put off while the packages were installed: /' \"$1{PUT_OFF}\"; fi"
    f" && rm -f \"$1{PUT_OFF}\" \"$1/usr/sbin/update-initramfs\""
    " && chroot \"$1\" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs",
)
"""mmdebstrap hooks: Debian makes no initramfs while the packages are installed. Its
kernel and initramfs-tools each make one (their hook, then their trigger), 20 s each here,
and neither is what the image boots: the L1's is made again after its recipe has chosen
its modules (customize.sh), the prime has its own (build-initramfs.sh)."""


def _build_disk_image(recipe: Path, out: Path, log: Path, progress: Progress,
                      carried: Carried = tuple) -> None:
    """An L1 disk image: mmdebstrap into a folder, the L2 images it carries (waited for
    here, built meanwhile), then ext4 (no mount needed), then qcow2."""
    root = out / "root"
    _run("mmdebstrap (Debian packages)", [
        "mmdebstrap", "--variant=apt", "--include=" + ",".join(packages(recipe)),
        *INITRAMFS_AT_THE_END,
        f"--customize-hook=sh {recipe / 'customize.sh'} \"$1\"",
        SUITE, str(root),
    ], log, progress)
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise ImageBuildError(f"the {recipe.name} recipe produced no kernel or initrd in /boot")
    shutil.copyfile(kernels[-1], out / "vmlinuz")
    shutil.copyfile(initrds[-1], out / "initrd.img")
    for guest in carried():
        _bake_guest_image(root, guest)
    raw = out / "disk.raw"
    with raw.open("wb") as handle:
        handle.truncate(L1_DISK_SIZE)
    _run("mkfs.ext4 from the root tree", [
        "mkfs.ext4", "-q", "-F", "-L", "nestlab-root", "-d", str(root), str(raw),
    ], log, progress)
    _run("qemu-img convert to qcow2", [
        "qemu-img", "convert", "-O", "qcow2", str(raw), str(out / "disk.qcow2"),
    ], log, progress)
    raw.unlink()
    shutil.rmtree(root)


def _bake_guest_image(root: Path, image: BuiltImage) -> None:
    """An L2 image's files in an L1 image's tree, laid out as `up` leaves them in an L1
    (nestlab.provision.linux.ensure_guest_image), with their list of hashes last: `up`
    then finds them listed, unchanged since, and copies nothing (13 MB through the
    emulated L1's SSH, then the kernel unpacked: 5 s). An L2 image built anew later
    differs from them and is copied as before."""
    folder = root / L1_GUEST_DIR.lstrip("/") / "images" / image.name
    folder.mkdir(parents=True, exist_ok=True)
    kernel, initrd = image.boot_files()
    files = {"vmlinuz": kernel, "initrd.img": initrd}
    if image.vmlinux_zst is not None:
        files["vmlinux.zst"] = image.vmlinux_zst
    for target, source in files.items():
        shutil.copyfile(source, folder / target)
    (folder / L1_SUMS).write_text(l1_sums(image))


L1_SUMS = "SHA256SUMS"
"""The file, in an L2 image's folder in an L1, that lists the SHA-256 of each file `up`
copies there as it is (``l1_copies``), as `sha256sum` prints them; written after them."""


def l1_copies(image: BuiltImage) -> list[tuple[Path, str]]:
    """(file on L0, its name in the image's folder in an L1) for each file of an L2 image
    that an L1 gets as it is: the zstd of the uncompressed kernel (unpacked there as
    ``vmlinuz``), or the bzImage itself for an image without one, and the initrd."""
    kernel, initrd = image.bzimage_files()
    return [(local, local.name) for local in (image.vmlinux_zst or kernel, initrd)]


def l1_sums(image: BuiltImage) -> str:
    """What ``L1_SUMS`` holds for ``image``."""
    return "".join(f"{file_sha256(local)}  {name}\n" for local, name in l1_copies(image))


def _build_prime(recipe: Path, out: Path, log: Path, progress: Progress) -> None:
    """The L2 prime: a kernel and a busybox/dropbear initramfs, assembled in a build root."""
    _run("mmdebstrap + initramfs", [
        "mmdebstrap", "--variant=essential", "--include=" + ",".join(packages(recipe)),
        *INITRAMFS_AT_THE_END,
        f"--customize-hook=mkdir -p \"$1/tmp/prime-recipe\" && cp -r {recipe}/. "
        "\"$1/tmp/prime-recipe/\"",
        "--customize-hook=chroot \"$1\" sh /tmp/prime-recipe/build-initramfs.sh",
        f"--customize-hook=copy-out /prime {out}",
        SUITE, "/dev/null",
    ], log, progress)
    for produced in (out / "prime").iterdir():
        os.replace(produced, out / produced.name)
    (out / "prime").rmdir()

