"""The Windows image build around its install: a failed build leaves no partial image but
keeps its serial log and screenshots, and QEMU (its own user) can enter the build folder.
The install itself is replaced here (no Windows runs); tests/unit/test_setupwatch.py
covers its wait."""

from __future__ import annotations

import stat
from pathlib import Path

import libvirt
import pytest

from nestlab.build import winimage
from nestlab.build.images import ImageBuildError, images_root
from nestlab.host.check import check_host
from nestlab.lab.systems import OS
from tests.conftest import facts


def test_a_failed_build_keeps_its_logs_and_screenshots_not_its_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path / "cache"))
    iso = tmp_path / "WindowsServer2016.iso"
    iso.write_bytes(b"not really an ISO" * 100)
    seen: dict[str, object] = {}

    def install(plan: winimage.WindowsBuildPlan, _uri: str, _progress: object,
                _timeout: float) -> None:
        seen["folder mode"] = stat.S_IMODE(plan.disk_path.parent.stat().st_mode)
        seen["disk"] = plan.disk_path.exists()
        screens = plan.serial_log.parent / "screens"
        screens.mkdir()
        (screens / "latest.ppm").write_bytes(b"P6 product key")
        plan.serial_log.write_text("nestlab-build: specialize\r\n")
        raise ImageBuildError("Windows setup: no progress for 12 min (...)")

    monkeypatch.setattr(winimage, "_install", install)
    with pytest.raises(ImageBuildError):
        winimage.build_windows_image("windows-server-2016", iso, "standard", "test:///default",
                                     check_host(facts("intel-nested-y")), lambda _s: None)
    assert seen == {"folder mode": 0o711, "disk": True}
    folder = images_root() / "windows-server-2016"
    [logs] = list(folder.iterdir())
    assert logs.name.endswith(".log") and stat.S_IMODE(logs.stat().st_mode) == 0o700
    assert (logs / "serial.log").read_bytes() == b"nestlab-build: specialize\r\n"
    assert (logs / "screens" / "latest.ppm").exists()


class RefusesEvmcs:
    """A connection whose host refuses eVMCS, as libvirt says it."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def createXML(self, xml: str, _flags: int) -> str:
        if "<evmcs state='on'/>" in xml:
            raise libvirt.libvirtError("unsupported configuration: host doesn't support "
                                       "hyperv 'evmcs' feature")
        self.started.append(xml)
        return "domain"


def test_an_install_the_host_refuses_evmcs_for_starts_without_it(tmp_path: Path) -> None:
    report = check_host(facts("intel-nested-y"))
    plan = winimage.build_plan(report, "01234567", OS.windows_server_2016, "standard", tmp_path,
                               tmp_path / "ws.iso", logs=tmp_path / "logs")
    assert plan.evmcs
    conn, said = RefusesEvmcs(), []
    assert winimage.start_install_domain(conn, plan, "pw", said.append) == "domain"  # type: ignore[arg-type]
    [xml] = conn.started
    assert "evmcs" not in xml and "<vapic state='on'/>" in xml
    assert said == ["this host refuses eVMCS (Hyper-V's enlightened VMCS): installing "
                    "without it"]


def test_an_install_that_cannot_start_for_another_reason_says_why(tmp_path: Path) -> None:
    plan = winimage.build_plan(check_host(facts("intel-nested-y")), "01234567",
                               OS.windows_server_2016, "standard",
                               tmp_path, tmp_path / "ws.iso", logs=tmp_path / "logs")

    class NoMemory:
        def createXML(self, _xml: str, _flags: int) -> str:
            raise libvirt.libvirtError("cannot allocate memory")

    with pytest.raises(ImageBuildError, match="cannot start the install domain: cannot "
                                              "allocate memory"):
        winimage.start_install_domain(NoMemory(), plan, "pw", lambda _s: None)  # type: ignore[arg-type]
