"""`make acceptance-windows`: the Windows Server version comes from the ISO or from OS=,
and picks the image to build and the example lab. Run with `make -n`, which prints the
commands and runs only the recursive make (and the ISO's identification before it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.fakes.windows_iso import image_names, wim_with_images, write_windows_iso

VENV = Path(sys.executable).parent.parent


def make(*args: str, dry_run: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", *(["-n"] if dry_run else []), "-C", str(REPO),
                           f"VENV={VENV}", *args],
                          capture_output=True, text=True, check=False, timeout=120)


def commands(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if "/bin/nestlab " in line]


@pytest.mark.parametrize(("year", "lab"), [(2016, "windows-hyperv"),
                                           (2019, "windows-server-2019"),
                                           (2022, "windows-server-2022")])
def test_the_version_is_read_from_the_iso(tmp_path: Path, year: int, lab: str) -> None:
    iso = write_windows_iso(tmp_path / "eval.iso",
                            wim_with_images(image_names(f"Windows Server {year}")))
    result = make("acceptance-windows", f"ISO={iso}")
    assert result.returncode == 0, result.stderr
    assert f"acceptance-windows: windows-server-{year} from {iso}" in result.stdout
    assert [c.partition("/bin/")[2] for c in commands(result.stdout)] == [
        f"nestlab image identify --iso \"{iso}\") || exit 2; \\",
        f"nestlab check -f examples/{lab}.yaml",
        "nestlab image build prime",
        f"nestlab image build windows-server-{year} --iso \"{iso}\"",
        f"nestlab up -f examples/{lab}.yaml",
        f"nestlab down -f examples/{lab}.yaml",
    ]
    assert f"NESTLAB_ACCEPTANCE_LAB={lab} " in result.stdout


def test_os_overrides_the_iso(tmp_path: Path) -> None:
    result = make("acceptance-windows", f"ISO={tmp_path / 'not-read.iso'}",
                  "OS=windows-server-2019")
    assert result.returncode == 0, result.stderr
    assert "acceptance-windows: windows-server-2019 from" in result.stdout
    assert "nestlab up -f examples/windows-server-2019.yaml" in result.stdout


def test_an_iso_that_names_no_version_stops_it_with_nestlabs_message(tmp_path: Path) -> None:
    not_iso = tmp_path / "x.iso"
    not_iso.write_bytes(b"\0" * 70000)
    result = make("acceptance-windows", f"ISO={not_iso}")
    assert result.returncode != 0
    assert f"nestlab: error: {not_iso}: not an ISO image that can be read" in result.stderr
    assert "nestlab up" not in result.stdout


def test_an_unknown_os_is_refused_before_anything_runs() -> None:
    result = make("acceptance-windows-os", "OS=windows-server-2012", "ISO=/x.iso",
                  dry_run=False)
    assert result.returncode == 2
    assert "OS=windows-server-2012: nestlab builds windows-server-2016" in result.stdout
    assert "nestlab" not in result.stdout.replace("nestlab builds", "")
