"""Image recipes: keys that follow the recipe, the cache, and a clear error for bad names."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nestlab.build import images
from nestlab.build.images import (
    L1_GUEST_DIR,
    BuiltImage,
    ConcurrentBuilds,
    build_image,
    find_image,
    list_images,
    packages,
    recipe_dir,
    recipe_key,
)
from nestlab.errors import NestlabError
from nestlab.provision import linux as provision


def test_known_recipes_ship_with_the_package() -> None:
    for name in ("debian-12", "prime"):
        assert (recipe_dir(name) / "packages").is_file()
    assert "openssh-server" in packages(recipe_dir("debian-12"))
    assert "dropbear-bin" in packages(recipe_dir("prime"))


def test_unknown_recipe() -> None:
    with pytest.raises(NestlabError, match="no image recipe named 'centos'"):
        recipe_dir("centos")


def test_key_follows_content_and_mode(tmp_path: Path) -> None:
    recipe = tmp_path / "r"
    shutil.copytree(recipe_dir("prime"), recipe)
    key = recipe_key(recipe)
    assert key == recipe_key(recipe)
    (recipe / "init").write_text((recipe / "init").read_text() + "# changed\n")
    changed = recipe_key(recipe)
    assert changed != key
    (recipe / "init").chmod(0o644)
    assert recipe_key(recipe) != changed


def test_cached_image_is_reused_without_building(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path))
    key = recipe_key(recipe_dir("prime"))
    folder = tmp_path / "images" / "prime" / key
    folder.mkdir(parents=True)
    (folder / "vmlinuz").write_bytes(b"kernel")
    (folder / "initrd.img").write_bytes(b"initrd")
    (folder / "manifest.json").write_text(json.dumps({
        "name": "prime", "key": key, "path": str(folder), "kernel": str(folder / "vmlinuz"),
        "initrd": str(folder / "initrd.img"), "disk": None, "size": 1, "seconds": 1.0,
        "built": "2026-01-01T00:00:00Z"}))
    image, built = build_image("prime")  # would need mmdebstrap if it tried to build
    assert not built
    assert image == find_image("prime")
    assert [i.key for i in list_images()] == [key]


def test_damaged_manifest_means_no_image(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path))
    folder = tmp_path / "images" / "prime" / recipe_key(recipe_dir("prime"))
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{")
    assert find_image("prime") is None


@pytest.mark.parametrize("change", [
    {"kernel": "/etc/passwd"}, {"initrd": "../../../../etc/shadow"}, {"disk": ".."},
    {"size": []}, {"seconds": {"a": 1}}, {"kernel": 12},
])
def test_a_manifest_naming_files_elsewhere_or_of_the_wrong_type_is_no_image(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, object]) -> None:
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path))
    key = recipe_key(recipe_dir("prime"))
    folder = tmp_path / "images" / "prime" / key
    folder.mkdir(parents=True)
    for name in ("vmlinuz", "initrd.img"):
        (folder / name).write_bytes(b"x")
    manifest = {"name": "prime", "key": key, "path": str(folder),
                "kernel": str(folder / "vmlinuz"), "initrd": str(folder / "initrd.img"),
                "disk": None, "size": 1, "seconds": 1.0, "built": "2026-01-01T00:00:00Z"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert find_image("prime") is not None
    (folder / "manifest.json").write_text(json.dumps(manifest | change))
    assert find_image("prime") is None


@pytest.mark.parametrize("name", ["windows-server-2016", "windows-server-2019",
                                  "windows-server-2022"])
def test_an_image_from_the_users_iso_is_found_not_built(tmp_path: Path, name: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path))
    with pytest.raises(NestlabError, match=f"image {name} is not built") as info:
        build_image(name)
    assert info.value.hint == f"Build it: nestlab image build {name} --iso PATH"


def stand_in_builds(monkeypatch: pytest.MonkeyPatch, started: list[str],
                    carried: dict[str, list[str]] | None = None) -> None:
    """Builds that write a kernel and an initrd, noting which recipe they built and which
    images it carried."""
    def build(recipe: Path, out: Path, log: Path, progress: Callable[[str], None],
              with_images: images.Carried = tuple) -> None:
        started.append(recipe.name)
        progress("stand-in build")
        time.sleep(0.2)  # long enough for a second build of the same image to overlap
        laid_in = with_images()  # as the real build does, after its packages
        if carried is not None:
            carried[recipe.name] = [i.name for i in laid_in]
            # what is laid in is built and cached by then
            assert all(find_image(i.name) == i for i in laid_in)
        (out / "vmlinuz").write_bytes(b"kernel")
        (out / "initrd.img").write_bytes(b"initrd")

    monkeypatch.setattr(images, "_require_tools", lambda: None)
    monkeypatch.setattr(images, "_build_prime", build)
    monkeypatch.setattr(images, "_build_disk_image", build)


def test_the_l2_image_is_built_once_and_beside_the_l1_image_that_carries_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The L1 image carries the L2 image's files: both builds run at once, and the L1
    image's waits for the L2 image only where it lays its files in."""
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path))
    started: list[str] = []
    carried: dict[str, list[str]] = {}
    stand_in_builds(monkeypatch, started, carried)
    said: list[tuple[str, str]] = []
    builds = ConcurrentBuilds(["debian-12", "prime", "prime"], lambda n, s: said.append((n, s)))
    first, built = builds.result("debian-12")
    assert built and first == find_image("debian-12")
    assert find_image("prime") is not None
    assert sorted(started) == ["debian-12", "prime"]
    assert carried == {"prime": [], "debian-12": ["prime"]}
    assert ("debian-12", "stand-in build") in said
    again = ConcurrentBuilds(["prime", "debian-12"], lambda n, s: said.append((n, s)))
    assert [again.result(n)[1] for n in ("prime", "debian-12")] == [False, False]
    assert len(started) == 2  # cached now: nothing was built again


def test_the_l1_images_packages_go_in_while_the_l2_image_it_carries_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked for the L1 image alone, its build starts at once, beside the L2 image's: the
    two installs of Debian packages are what took longest, one after the other."""
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path))
    stand_in_builds(monkeypatch, [])
    stand_in = images._build_disk_image
    l1_started = threading.Event()
    overlapped: list[bool] = []

    def l1(recipe: Path, out: Path, log: Path, progress: Callable[[str], None],
           with_images: images.Carried = tuple) -> None:
        l1_started.set()
        stand_in(recipe, out, log, progress, with_images)

    def l2(recipe: Path, out: Path, log: Path, progress: Callable[[str], None]) -> None:
        overlapped.append(l1_started.wait(timeout=5))
        stand_in(recipe, out, log, progress)

    monkeypatch.setattr(images, "_build_disk_image", l1)
    monkeypatch.setattr(images, "_build_prime", l2)
    image, built = build_image("debian-12")
    assert built and image == find_image("debian-12")
    assert overlapped == [True]
    assert find_image("prime") is not None


def test_the_l1_images_key_follows_the_l2_recipe_it_carries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = images.image_key("debian-12")
    assert before != recipe_key(recipe_dir("debian-12"))
    assert images.image_key("prime") == recipe_key(recipe_dir("prime"))
    prime = tmp_path / "prime"
    shutil.copytree(recipe_dir("prime"), prime)
    (prime / "init").write_text((prime / "init").read_text() + "# changed\n")
    real = images.recipe_dir
    monkeypatch.setattr(images, "recipe_dir",
                        lambda name: prime if name == "prime" else real(name))
    assert images.image_key("debian-12") != before


def test_an_l2_image_is_laid_out_in_the_l1_image_as_up_copies_it(tmp_path: Path) -> None:
    folder = tmp_path / "image"
    folder.mkdir()
    for name in ("vmlinuz", "vmlinux", "vmlinux.zst", "initrd.img"):
        (folder / name).write_bytes(f"{name} of prime".encode())
    image = BuiltImage(name="prime", key="k", path=folder, kernel=folder / "vmlinuz",
                       initrd=folder / "initrd.img", disk=None, size=1, seconds=0.0,
                       built="2026-01-01T00:00:00Z", vmlinux=folder / "vmlinux",
                       vmlinux_zst=folder / "vmlinux.zst")
    root = tmp_path / "root"
    images._bake_guest_image(root, image)

    def in_root(path: str) -> Path:
        return root / path.lstrip("/")

    copies = provision._copies(image)  # what `up` checks, and copies when they differ
    assert [remote.rsplit("/", 1)[1] for _local, remote in copies] == [
        "vmlinux.zst", "initrd.img"]
    for local, remote in copies:
        assert in_root(remote).read_bytes() == local.read_bytes()
    # The L2's <kernel> (the plan's path) is the uncompressed kernel, as `up` unpacks it.
    assert in_root(f"{L1_GUEST_DIR}/images/prime/vmlinuz").read_bytes() == b"vmlinux of prime"
    # The list of the copies' hashes, as sha256sum prints them (`sha256sum -c` checks it
    # in the L1's folder), written after them.
    sums = in_root(f"{L1_GUEST_DIR}/images/prime/{images.L1_SUMS}")
    printed = subprocess.run(["sha256sum", "vmlinux.zst", "initrd.img"], cwd=folder,
                             capture_output=True, text=True, check=True).stdout
    assert sums.read_text() == images.l1_sums(image) == printed
    assert all(in_root(remote).stat().st_mtime_ns <= sums.stat().st_mtime_ns
               for _local, remote in copies)


def test_a_failed_build_fails_its_image_and_those_that_carry_it_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path))
    stand_in_builds(monkeypatch, [])

    def broken(recipe: Path, out: Path, log: Path, progress: Callable[[str], None],
               with_images: images.Carried = tuple) -> None:
        raise images.ImageBuildError(f"{recipe.name}: image build failed at 'mmdebstrap'")

    monkeypatch.setattr(images, "_build_disk_image", broken)
    builds = ConcurrentBuilds(["debian-12", "prime"], lambda n, s: None)
    with pytest.raises(images.ImageBuildError, match="debian-12: image build failed"):
        builds.result("debian-12")
    # Built by its own build or by debian-12's (which starts it too): either thread may
    # take its lock first; what counts is that it was built although debian-12 failed.
    assert builds.result("prime")[0] == find_image("prime") is not None

    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path / "again"))
    stand_in_builds(monkeypatch, [])
    monkeypatch.setattr(images, "_build_prime", broken)
    builds = ConcurrentBuilds(["debian-12", "prime"], lambda n, s: None)
    for name in ("debian-12", "prime"):  # the L1 image cannot carry an L2 image not built
        with pytest.raises(images.ImageBuildError, match="prime: image build failed"):
            builds.result(name)


def test_the_l1_image_never_blacklists_what_reads_a_seed_or_runs_l2s() -> None:
    """The seed is a virtio disk for nestlab, a SATA CD-ROM for a vagrant-libvirt or
    virt-install user (bench/peers.py): with ahci blacklisted their L1s came up without
    the lab's key. KVM, the L2s' bridge and tap, and libvirt's firewall are the job."""
    conf = recipe_dir("debian-12") / "files" / "nestlab-unused-modules.conf"
    listed = {line.split()[1] for line in conf.read_text().splitlines()
              if line.startswith("blacklist ")}
    assert listed and "cfg80211" in listed  # it is read: the blacklist is there
    needed = {"virtio_blk", "virtio_pci", "virtio_net", "ahci", "libahci", "libata",
              "sr_mod", "cdrom", "isofs", "ext4", "kvm", "kvm_amd", "kvm_intel", "bridge",
              "tun", "vhost_net", "nf_tables", "nft_compat", "nf_nat", "virtio_rng"}
    assert not listed & needed
