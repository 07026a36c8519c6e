"""The FAKE Hyper-V L1 (tests/fakes/hyperv.py) behaves like the real thing where
bugs live: these tests pin each behaviour it copies to its source."""

from __future__ import annotations

import inspect
from importlib import resources
from pathlib import Path

import pytest
from pypsrp.client import Client
from pypsrp.exceptions import WinRMError

from nestlab.render import powershell_script
from nestlab.transport.winrm import WinRMTransport
from tests.fakes.hyperv import FakeHyperVL1
from tests.fakes.runspace import FakeRunspaceFactory


def test_pypsrp_copy_moves_a_temporary_file_and_makes_no_folder() -> None:
    copy = (resources.files("pypsrp") / "pwsh_scripts" / "copy.ps1").read_text()
    assert "[System.IO.Path]::GetTempFileName()" in copy
    assert "[System.IO.File]::Move($path, $output_path)" in copy
    for folder_maker in ("New-Item", "CreateDirectory", "mkdir"):
        assert folder_maker not in copy
    assert '_handle_powershell_error(powershell, "Failed to copy file")' in inspect.getsource(
        Client.copy)


def test_winrm_transport_put_passes_pypsrps_error_on() -> None:
    class FailingCopy(FakeRunspaceFactory):
        def copy(self, local: Path, remote: str) -> None:
            raise WinRMError("Failed to copy file: Could not find a part of the path")

    t = WinRMTransport("hv1", "10.78.0.10", "Administrator", "pw", factory=FailingCopy(),
                       sleep=lambda _s: None)
    try:
        with pytest.raises(WinRMError, match="Failed to copy file"):
            t.put(Path("/dev/null"), "C:\\missing\\x.iso")
    finally:
        t.close()


def test_put_needs_the_target_folder(tmp_path: Path) -> None:
    local = tmp_path / "prime.iso"
    local.write_bytes(b"iso")
    l1 = FakeHyperVL1()
    with pytest.raises(WinRMError, match=r"Could not find a part of the path 'C:\\nestlab"):
        l1.put(local, "C:\\nestlab\\prime1\\prime.iso")
    assert l1.files == {}
    l1.put(local, "C:\\Windows\\Temp\\prime.iso")  # a folder every L1 has
    assert l1.run_script("file-hash", powershell_script("file-hash"),
                         {"Path": "c:\\windows\\temp\\PRIME.ISO"}).stdout.count("sha256") == 1


def test_folders_come_only_from_scripts_that_make_them(tmp_path: Path) -> None:
    local = tmp_path / "prime.iso"
    local.write_bytes(b"iso")
    l1 = FakeHyperVL1()
    first = l1.run_script("guest-folder", powershell_script("guest-folder"),
                          {"Path": "C:\\nestlab\\prime1"})
    again = l1.run_script("guest-folder", powershell_script("guest-folder"),
                          {"Path": "C:\\nestlab\\prime1"})
    assert (first.stdout, again.stdout) == ('{"created": true}', '{"created": false}')
    assert {"c:\\nestlab", "c:\\nestlab\\prime1"} <= l1.folders  # -Force makes the parents
    l1.put(local, "C:\\nestlab\\prime1\\prime.iso")
    assert "c:\\nestlab\\prime1\\prime.iso" in l1.files
