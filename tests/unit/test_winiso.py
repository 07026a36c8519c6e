"""Which Windows Server an ISO holds, read from its install.wim (FAKE ISOs, tests/fakes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.build.seed import write_seed_iso
from nestlab.build.winimage import build_windows_image
from nestlab.build.winiso import (
    IsoNotRecognized,
    base_image_of,
    check_iso_holds,
    read_windows_iso,
)
from nestlab.errors import NestlabError
from nestlab.host.check import check_host
from nestlab.lab.systems import OS
from tests.conftest import facts
from tests.fakes.windows_iso import image_names, wim_with_images, write_windows_iso


def iso_of(tmp_path: Path, product: str, **kwargs: str) -> Path:
    return write_windows_iso(tmp_path / "windows.iso", wim_with_images(image_names(product)),
                             **kwargs)


@pytest.mark.parametrize("os", [OS.windows_server_2016, OS.windows_server_2019,
                                OS.windows_server_2022])
def test_the_version_is_read_from_the_install_image_names(tmp_path: Path, os: OS) -> None:
    iso = iso_of(tmp_path, os.profile.product)
    found = read_windows_iso(iso)
    assert found.image_names == tuple(image_names(os.profile.product))
    assert found.version is os
    assert base_image_of(found, iso) == os.profile.default_image


def test_an_install_esd_is_read_too(tmp_path: Path) -> None:
    iso = iso_of(tmp_path, "Windows Server 2022", install_path="/sources/install.esd")
    assert read_windows_iso(iso).version is OS.windows_server_2022


def test_another_windows_is_named_and_refused(tmp_path: Path) -> None:
    iso = write_windows_iso(tmp_path / "w.iso", wim_with_images(
        ["Windows 11 Enterprise LTSC Evaluation"]))
    with pytest.raises(IsoNotRecognized, match="holds Windows 11 Enterprise LTSC Evaluation: "
                                               "not one of the Windows Server versions") as info:
        base_image_of(read_windows_iso(iso), iso)
    assert info.value.hint and "Windows Server 2022" in info.value.hint


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b"not an iso" * 100), "not an ISO image that can be read"),
    (lambda p: write_seed_iso(p, {"a.txt": "x"}), "has no UDF file system"),
    (lambda p: write_windows_iso(p, None), "has no /sources/install.wim or /sources/install.esd"),
    (lambda p: write_windows_iso(p, b"PK\3\4" + bytes(300)), "/sources/install.wim is not a WIM"),
    (lambda p: write_windows_iso(p, wim_with_images(["x"])[:208]), "XML cannot be read"),
])
def test_what_is_no_windows_iso_says_so_with_a_hint(tmp_path: Path, make: object,
                                                     message: str) -> None:
    iso = tmp_path / "bad.iso"
    make(iso)  # type: ignore[operator]
    with pytest.raises(IsoNotRecognized, match=message) as info:
        read_windows_iso(iso)
    assert info.value.hint and "windows-server-2022" in info.value.hint
    assert info.value.exit_code == 2


def test_xml_with_entities_is_refused(tmp_path: Path) -> None:
    wim = wim_with_images(["Windows Server 2022 SERVERSTANDARD"])
    bomb = wim.replace("<WIM>".encode("utf-16-le"),
                       '<!DOCTYPE WIM [<!ENTITY a "aaaa">]><WIM>'.encode("utf-16-le"))
    bomb = bomb[:0x48] + (len(bomb) - 208 - 4096).to_bytes(8, "little") + bomb[0x50:]
    iso = write_windows_iso(tmp_path / "w.iso", bomb)
    with pytest.raises(IsoNotRecognized, match="declares a DTD"):
        read_windows_iso(iso)


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTLAB_CACHE", str(tmp_path / "cache"))


# A host that cannot install Windows (tcg): without the ISO check, the build stops at the
# host check instead, never at a libvirt it would start an install in.
TCG_HOST = "this-machine-paravirtual-kvm"


def test_an_iso_of_another_version_is_refused_before_the_build(tmp_path: Path) -> None:
    iso = iso_of(tmp_path, "Windows Server 2019")
    assert check_iso_holds(iso, "Windows Server 2019 SERVERDATACENTER") is None
    with pytest.raises(IsoNotRecognized) as info:
        build_windows_image("windows-server-2022", iso, "standard", "test:///default",
                            check_host(facts(TCG_HOST)), lambda _line: None)
    assert info.value.message.startswith(
        f"{iso} has no image 'Windows Server 2022 SERVERSTANDARD'; its install image holds: "
        "Windows Server 2019 SERVERSTANDARDCORE, Windows Server 2019 SERVERSTANDARD")
    assert info.value.hint == (f"This ISO is Windows Server 2019: nestlab image build "
                               f"windows-server-2019 --iso {iso}")


def test_an_iso_that_cannot_be_read_is_let_through_with_a_note(tmp_path: Path) -> None:
    iso = tmp_path / "remastered.iso"
    write_seed_iso(iso, {"autounattend.xml": "<unattend/>"})
    note = check_iso_holds(iso, "Windows Server 2022 SERVERSTANDARD")
    assert note and note.endswith("installing 'Windows Server 2022 SERVERSTANDARD' as asked")
    lines: list[str] = []
    with pytest.raises(NestlabError, match="installing Windows needs kvm"):
        build_windows_image("windows-server-2022", iso, "standard", "test:///default",
                            check_host(facts(TCG_HOST)), lines.append)
    assert lines == [note]
