"""The package as users get it: a wheel installed into a fresh venv, used from elsewhere.

A hand-kept package list once shipped ``nestlab/`` without ``nestlab.transport``,
``nestlab.virt`` and ``nestlab.provision``: ``--help`` still worked (commands import
lazily) while ``up``, ``down``, ``status`` and ``exec`` ended in an internal error.
So the wheel is compared with the source tree, every module of the source tree is
imported from the installed copy, and a command that reaches the transports is run.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from tests.conftest import EXAMPLES, FACTS, REPO

# Installed package -> its folder in the source tree (setup.cfg's package_dir).
SOURCE_FOLDERS = {
    "nestlab": REPO / "nestlab",
    "nestlab/templates": REPO / "templates",
    "nestlab/recipes": REPO / "images",
}
DATA_PACKAGES = ("nestlab/templates", "nestlab/recipes")


def sh(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = run(*args, cwd=cwd, env=env)
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


def run(*args: str | Path, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          check=False, env={**base, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                                            **(env or {})})


def source_files(installed: str) -> dict[str, bool]:
    """Every file of one source folder, by its path in the installed package -> executable."""
    folder = SOURCE_FOLDERS[installed]
    return {
        f"{installed}/{path.relative_to(folder).as_posix()}": bool(path.stat().st_mode & 0o111)
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def source_modules() -> list[str]:
    """Dotted names of every module in the source tree (``__main__`` runs the CLI: left out)."""
    names = []
    for installed in SOURCE_FOLDERS:
        for file in source_files(installed):
            path = PurePosixPath(file)
            if path.suffix != ".py" or path.stem == "__main__":
                continue
            parts = path.with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Build from a copy of what git has (tracked, or new and not ignored), as a clone or
    # the sdist would: no build/ or egg-info lands in the work tree, nothing local leaks in.
    src = tmp_path_factory.mktemp("src") / "nestlab"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", out, src)
    [built] = out.glob("nestlab-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel (and its dependencies) installed."""
    path = tmp_path_factory.mktemp("venv")
    sh(sys.executable, "-m", "venv", path)
    sh(path / "bin/pip", "install", "--quiet", wheel)
    return path


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder with no nestlab source in it, so imports come from the venv."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def wheel_files(wheel: Path) -> dict[str, bool]:
    """The wheel's files (not its .dist-info) -> whether they are executable."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            info.filename: bool((info.external_attr >> 16) & 0o111)
            for info in archive.infolist()
            if not info.is_dir() and ".dist-info/" not in info.filename
        }


def test_wheel_has_every_python_module_of_the_source_tree(wheel: Path) -> None:
    shipped = {f for f in wheel_files(wheel) if f.endswith(".py")}
    expected = {f for installed in SOURCE_FOLDERS for f in source_files(installed)
                if f.endswith(".py")}
    assert "nestlab/transport/ssh.py" in expected  # the source walk itself works
    missing, extra = sorted(expected - shipped), sorted(shipped - expected)
    assert (missing, extra) == ([], [])


def test_wheel_has_every_template_and_recipe_file_with_its_mode(wheel: Path) -> None:
    shipped = wheel_files(wheel)
    for package in DATA_PACKAGES:
        expected = source_files(package)
        assert any(name.endswith(".j2") or name.endswith("/packages") for name in expected)
        in_wheel = {name: x for name, x in shipped.items() if name.startswith(package + "/")}
        # recipe_key hashes each file's mode: a lost executable bit is a different image
        assert in_wheel == expected


def test_every_module_of_the_source_tree_imports_from_the_installed_package(
    venv: Path, elsewhere: Path
) -> None:
    modules = source_modules()
    assert {"nestlab.cli", "nestlab.transport.ssh", "nestlab.virt.objects",
            "nestlab.provision.linux", "nestlab.templates", "nestlab.recipes"} <= set(modules)
    script = (
        "import importlib, json, sys\n"
        "failed = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed[name] = f'{type(exc).__name__}: {exc}'\n"
        "import nestlab\n"
        "print(json.dumps({'failed': failed, 'from': nestlab.__file__}))\n"
    )
    # -I: no PYTHONPATH, no current folder on sys.path; only what the venv installed
    out = json.loads(sh(venv / "bin/python", "-I", "-c", script, json.dumps(modules),
                        cwd=elsewhere))
    assert Path(out["from"]).is_relative_to(venv)
    assert out["failed"] == {}


def test_help_of_every_command(venv: Path, elsewhere: Path) -> None:
    script = (
        "import json, click\n"
        "from nestlab.cli import main\n"
        "def walk(group, prefix):\n"
        "    for name, command in group.commands.items():\n"
        "        yield [*prefix, name]\n"
        "        if isinstance(command, click.Group):\n"
        "            yield from walk(command, [*prefix, name])\n"
        "print(json.dumps(list(walk(main, []))))\n"
    )
    commands: list[list[str]] = json.loads(sh(venv / "bin/python", "-I", "-c", script,
                                              cwd=elsewhere))
    assert {"up", "down", "status", "exec", "check"} <= {c[0] for c in commands}
    assert ["image", "build"] in commands
    for command in [[], *commands]:
        result = run(venv / "bin/nestlab", *command, "--help", cwd=elsewhere)
        assert result.returncode == 0, f"nestlab {' '.join(command)} --help: {result.stderr}"
        assert result.stdout.startswith("Usage: nestlab"), result.stdout


def test_pytest_of_the_venv_has_nestlabs_plugin(venv: Path, elsewhere: Path) -> None:
    """Installing nestlab is enough: its pytest11 entry point registers the plugin."""
    out = sh(venv / "bin/pytest", "--help", cwd=elsewhere)
    for option in ("--nestlab=FILE", "--nestlab-sandbox", "--nestlab-reuse", "--nestlab-keep"):
        assert option in out
    checks = sh(venv / "bin/python", "-I", "-c", "from nestlab.commands.verify import "
                "checks_file; print(checks_file())", cwd=elsewhere).strip()
    assert Path(checks).is_relative_to(venv) and Path(checks).is_file()


def test_init_in_a_fresh_venv_writes_the_scaffold(venv: Path, elsewhere: Path) -> None:
    out = sh(venv / "bin/nestlab", "init", "course", cwd=elsewhere)
    assert "wrote course/Makefile" in out
    assert (elsewhere / "course" / "tests" / "test_lab.py").is_file()


@pytest.fixture
def down_nosuch(venv: Path, elsewhere: Path) -> subprocess.CompletedProcess[str]:
    """``nestlab down --lab nosuch``: down imports the transports before it looks."""
    return run(venv / "bin/nestlab", "down", "--lab", "nosuch", cwd=elsewhere,
               env={"NESTLAB_HOME": str(elsewhere / "home")})


def test_a_command_that_reaches_the_transports_is_no_internal_error(
    down_nosuch: subprocess.CompletedProcess[str],
) -> None:
    assert "internal error" not in down_nosuch.stderr
    assert "ModuleNotFoundError" not in down_nosuch.stderr
    assert down_nosuch.returncode != 70, down_nosuch.stderr  # EX_SOFTWARE: a bug


def test_down_of_an_unknown_lab_says_no_such_lab(
    down_nosuch: subprocess.CompletedProcess[str],
) -> None:
    assert down_nosuch.returncode == 2, down_nosuch.stderr
    assert "no such lab" in down_nosuch.stderr


def test_installed_recipe_scripts_keep_their_executable_bit(venv: Path) -> None:
    [recipes] = venv.glob("lib/python3*/site-packages/nestlab/recipes")
    for name, executable in source_files("nestlab/recipes").items():
        installed = recipes / name.removeprefix("nestlab/recipes/")
        assert bool(installed.stat().st_mode & stat.S_IXUSR) == executable, name


def test_fresh_venv_renders_from_any_directory(venv: Path, elsewhere: Path) -> None:
    shutil.copy(EXAMPLES / "linux-nested.yaml", elsewhere / "nestlab.yaml")
    assert sh(venv / "bin/python", "-m", "nestlab", "--version", cwd=elsewhere).startswith(
        "nestlab, version")
    out = sh(venv / "bin/nestlab", "render", "--facts",
             FACTS / "this-machine-paravirtual-kvm.json", "--out", "rendered", cwd=elsewhere)
    assert "wrote 4 files" in out
    domain = elsewhere / "rendered/l0/domains/nestlab-linux-nested-kvm1.xml"
    assert "<domain type='qemu'>" in domain.read_text()
