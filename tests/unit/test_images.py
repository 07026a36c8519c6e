"""Image recipes: keys that follow the recipe, the cache, and a clear error for bad names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nestlab.build.images import (
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
