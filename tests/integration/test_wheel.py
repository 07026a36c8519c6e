"""The package as users get it: a wheel installed into a fresh venv renders from anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, FACTS, REPO


def sh(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            check=False, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Build from a copy so that no build/ or egg-info lands in the work tree.
    src = tmp_path_factory.mktemp("src") / "nestlab"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "*.egg-info", "build", "__pycache__", ".*_cache"))
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps",
       "-w", out, src)
    [built] = out.glob("nestlab-*.whl")
    return built


def test_wheel_carries_the_templates(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    templates = sorted(p.name for p in (REPO / "templates").glob("*.j2"))
    assert templates
    for name in templates:
        assert f"nestlab/templates/{name}" in names


def test_fresh_venv_renders_from_any_directory(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", venv)
    sh(venv / "bin/pip", "install", "--quiet", wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(EXAMPLES / "linux-nested.yaml", elsewhere / "nestlab.yaml")
    assert sh(venv / "bin/python", "-m", "nestlab", "--version", cwd=elsewhere).startswith(
        "nestlab, version")
    out = sh(venv / "bin/nestlab", "render", "--facts",
             FACTS / "this-machine-paravirtual-kvm.json", "--out", "rendered", cwd=elsewhere)
    assert "wrote 4 files" in out
    domain = elsewhere / "rendered/l0/domains/nestlab-linux-nested-kvm1.xml"
    assert "<domain type='qemu'>" in domain.read_text()
