"""Image recipes: keys that follow the recipe, the cache, and a clear error for bad names."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from nestlab.build import images
from nestlab.build.images import (
    ConcurrentBuilds,
    build_image,
    find_image,
    list_images,
    packages,
    recipe_dir,
    recipe_key,
)
from nestlab.errors import NestlabError


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


def stand_in_builds(monkeypatch: pytest.MonkeyPatch, barrier: threading.Barrier,
                    started: list[str]) -> None:
    """Builds that write a kernel and an initrd, each waiting at ``barrier`` until the
    other build has started too (a build that ran alone would wait in vain)."""
    def build(recipe: Path, out: Path, log: Path, progress: Callable[[str], None]) -> None:
        started.append(recipe.name)
        progress("stand-in build")
        barrier.wait()
        (out / "vmlinuz").write_bytes(b"kernel")
        (out / "initrd.img").write_bytes(b"initrd")

    monkeypatch.setattr(images, "_require_tools", lambda: None)
    monkeypatch.setattr(images, "_build_prime", build)
    monkeypatch.setattr(images, "_build_disk_image", build)


def test_images_that_are_missing_are_built_at_the_same_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path))
    started: list[str] = []
    stand_in_builds(monkeypatch, threading.Barrier(2, timeout=10), started)
    said: list[tuple[str, str]] = []
    builds = ConcurrentBuilds(["debian-12", "prime", "prime"], lambda n, s: said.append((n, s)))
    first, built = builds.result("debian-12")
    assert built and first == find_image("debian-12")
    assert builds.result("prime")[1]
    assert sorted(started) == ["debian-12", "prime"]
    assert sorted(said) == [("debian-12", "stand-in build"), ("prime", "stand-in build")]
    again = ConcurrentBuilds(["prime", "debian-12"], lambda n, s: said.append((n, s)))
    assert [again.result(n)[1] for n in ("prime", "debian-12")] == [False, False]
    assert len(started) == 2  # cached now: nothing was built again


def test_a_failed_build_fails_its_own_image_only(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path))
    stand_in_builds(monkeypatch, threading.Barrier(1), [])

    def broken(recipe: Path, out: Path, log: Path, progress: Callable[[str], None]) -> None:
        raise images.ImageBuildError("image build failed at 'mmdebstrap' (exit 1)")

    monkeypatch.setattr(images, "_build_prime", broken)
    builds = ConcurrentBuilds(["debian-12", "prime"], lambda n, s: None)
    with pytest.raises(images.ImageBuildError, match="mmdebstrap"):
        builds.result("prime")
    assert builds.result("debian-12")[1]
