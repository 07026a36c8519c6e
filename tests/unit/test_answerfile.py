"""Windows answer files: structure, password encodings, and the media that carry them."""

from __future__ import annotations

import stat
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from nestlab.build.answerfile import (
    ANSWER_LABEL,
    encode_password,
    generate_password,
    l1_password,
    render_install_answer,
    render_l1_answer,
    write_install_medium,
    write_l1_medium,
)
from nestlab.build.seed import read_seed_iso
from nestlab.lab.systems import OS, WINDOWS_IMAGES
from nestlab.render import password_placeholder, powershell_script
from tests.golden_cases import render_case
from tests.powershell import script_parameters

NS = {"u": "urn:schemas-microsoft-com:unattend"}
WCM = "{http://schemas.microsoft.com/WMIConfig/2002/State}"


def components(xml: str) -> dict[tuple[str, str], ET.Element]:
    root = ET.fromstring(xml)
    found = {}
    for settings in root.findall("u:settings", NS):
        for component in settings.findall("u:component", NS):
            assert component.get("processorArchitecture") == "amd64"
            assert component.get("publicKeyToken") == "31bf3856ad364e35"
            found[(settings.get("pass", ""), component.get("name", ""))] = component
    return found


def test_password_encoding_matches_worked_examples() -> None:
    # rgl/windows-vagrant windows-2016-uefi/autounattend.xml, password "vagrant".
    assert encode_password("vagrant", "AdministratorPassword") == (
        "dgBhAGcAcgBhAG4AdABBAGQAbQBpAG4AaQBzAHQAcgBhAHQAbwByAFAAYQBzAHMAdwBvAHIAZAA=")
    assert encode_password("vagrant", "Password") == "dgBhAGcAcgBhAG4AdABQAGEAcwBzAHcAbwByAGQA"


def test_install_answer_has_every_pass_and_component() -> None:
    xml = render_install_answer(OS.windows_server_2016, "standard", "S3cret-pw")
    assert xml.startswith('<?xml version="1.0" encoding="utf-8"?>\n<unattend')
    found = components(xml)
    assert set(found) == {
        ("windowsPE", "Microsoft-Windows-International-Core-WinPE"),
        ("windowsPE", "Microsoft-Windows-Setup"),
        ("specialize", "Microsoft-Windows-Deployment"),
        ("specialize", "Microsoft-Windows-ServerManager-SvrMgrNc"),
        ("oobeSystem", "Microsoft-Windows-International-Core"),
        ("oobeSystem", "Microsoft-Windows-Shell-Setup"),
    }
    setup = found[("windowsPE", "Microsoft-Windows-Setup")]
    types = [e.text for e in setup.findall(".//u:CreatePartition/u:Type", NS)]
    assert types == ["EFI", "MSR", "Primary"]
    assert setup.findtext(".//u:InstallTo/u:PartitionID", namespaces=NS) == "3"
    assert setup.findtext(".//u:MetaData/u:Key", namespaces=NS) == "/IMAGE/NAME"
    assert setup.findtext(".//u:MetaData/u:Value", namespaces=NS) == (
        "Windows Server 2016 SERVERSTANDARD")
    assert setup.findtext(".//u:ProductKey/u:WillShowUI", namespaces=NS) == "OnError"
    assert setup.find(".//u:ProductKey/u:Key", NS) is None  # evaluation media: no key
    assert setup.findtext(".//u:AcceptEula", namespaces=NS) == "true"
    shell = found[("oobeSystem", "Microsoft-Windows-Shell-Setup")]
    admin = shell.find("u:UserAccounts/u:AdministratorPassword", NS)
    assert admin is not None
    assert admin.findtext("u:Value", namespaces=NS) == encode_password(
        "S3cret-pw", "AdministratorPassword")
    assert admin.findtext("u:PlainText", namespaces=NS) == "false"
    assert shell.findtext("u:AutoLogon/u:Password/u:Value", namespaces=NS) == encode_password(
        "S3cret-pw", "Password")
    assert shell.findtext("u:AutoLogon/u:LogonCount", namespaces=NS) == "1"
    command = shell.find("u:FirstLogonCommands/u:SynchronousCommand", NS)
    assert command is not None and command.get(f"{WCM}action") == "add"
    assert "build.ps1" in (command.findtext("u:CommandLine", namespaces=NS) or "")
    assert "S3cret-pw" not in xml


def test_datacenter_edition() -> None:
    assert "Windows Server 2016 SERVERDATACENTER" in render_install_answer(
        OS.windows_server_2016, "datacenter", "x")


# The install.wim image names of each version's evaluation ISO, as rgl/windows-vagrant's and
# StefanScherer/packer-windows's answer files install them (docs/windows-versions.md).
@pytest.mark.parametrize(("os", "edition", "image"), [
    (OS.windows_server_2016, "standard", "Windows Server 2016 SERVERSTANDARD"),
    (OS.windows_server_2019, "standard", "Windows Server 2019 SERVERSTANDARD"),
    (OS.windows_server_2019, "datacenter", "Windows Server 2019 SERVERDATACENTER"),
    (OS.windows_server_2022, "standard", "Windows Server 2022 SERVERSTANDARD"),
    (OS.windows_server_2022, "datacenter", "Windows Server 2022 SERVERDATACENTER"),
])
def test_each_version_installs_its_own_image(os: OS, edition: str, image: str) -> None:
    setup = components(render_install_answer(os, edition, "Pw-1x"))[
        ("windowsPE", "Microsoft-Windows-Setup")]
    assert setup.findtext(".//u:MetaData/u:Value", namespaces=NS) == image
    assert setup.find(".//u:ProductKey/u:Key", NS) is None  # evaluation media of each: no key


def test_the_versions_answer_files_differ_only_in_the_image_name() -> None:
    answers = {os: render_install_answer(os, "standard", "Pw-1x") for os in WINDOWS_IMAGES.values()}
    assert len(answers) == 3
    assert len({text.replace(os.profile.product, "VERSION") for os, text in answers.items()}) == 1


def test_l1_answer_sets_name_password_and_winrm() -> None:
    xml = render_l1_answer("hv1", "Per-L1-pw9")
    found = components(xml)
    assert found[("specialize", "Microsoft-Windows-Shell-Setup")].findtext(
        "u:ComputerName", namespaces=NS) == "hv1"
    shell = found[("oobeSystem", "Microsoft-Windows-Shell-Setup")]
    assert shell.findtext("u:UserAccounts/u:AdministratorPassword/u:Value",
                          namespaces=NS) == encode_password("Per-L1-pw9", "AdministratorPassword")
    command = shell.findtext(".//u:CommandLine", namespaces=NS) or ""
    assert "'winrm.ps1'; if (Test-Path $p) { & $p -ComputerName hv1 }" in command
    assert script_parameters(powershell_script("winrm"))["ComputerName"] is True
    assert "Per-L1-pw9" not in xml


def test_generated_passwords_meet_windows_complexity() -> None:
    for _ in range(50):
        password = generate_password()
        classes = [any(c.isupper() for c in password), any(c.islower() for c in password),
                   any(c.isdigit() for c in password), any(not c.isalnum() for c in password)]
        assert len(password) == 24 and all(classes)


def test_l1_password_is_kept_0600_and_stable(tmp_path: Path) -> None:
    first = l1_password(tmp_path, "hv1")
    assert l1_password(tmp_path, "hv1") == first
    assert l1_password(tmp_path, "hv2") != first
    assert stat.S_IMODE((tmp_path / "keys" / "hv1.password").stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["install", "l1"])
def test_answer_medium_read_back(tmp_path: Path, kind: str) -> None:
    medium = tmp_path / "answer.iso"
    if kind == "install":
        write_install_medium(medium, OS.windows_server_2022, "standard", "pw-A1b2c3")
        script = "build.ps1"
    else:
        write_l1_medium(medium, "hv1", "pw-A1b2c3")
        script = "winrm.ps1"
    assert stat.S_IMODE(medium.stat().st_mode) == 0o600  # it holds a password
    files = read_seed_iso(medium, names="joliet")  # what Windows reads
    assert set(files) == {"autounattend.xml", script}
    assert files[script] == powershell_script(script.removesuffix(".ps1"))
    ET.fromstring(files["autounattend.xml"])
    label = subprocess.run(["blkid", "-o", "value", "-s", "LABEL", str(medium)],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert label == ANSWER_LABEL


def rendered_medium(host: str = "hv1") -> dict[str, str]:
    """What `nestlab render` writes of a Windows L1's answer medium."""
    prefix = f"l1/{host}/answer-medium/"
    return {str(path).removeprefix(prefix): text
            for path, text in render_case("windows-hyperv-kvm-intel").items()
            if str(path).startswith(prefix)}


def test_render_writes_the_medium_up_writes_but_for_the_password(tmp_path: Path) -> None:
    medium = tmp_path / "answer.iso"
    write_l1_medium(medium, "hv1", "Pw-of-hv1-9")
    written = read_seed_iso(medium, names="joliet")
    rendered = rendered_medium()
    assert set(rendered) == set(written) == {"autounattend.xml", "winrm.ps1"}
    assert rendered["winrm.ps1"] == written["winrm.ps1"]
    placeholder = escape(password_placeholder("hv1").administrator)
    expected = written["autounattend.xml"].replace(
        encode_password("Pw-of-hv1-9", "AdministratorPassword"), placeholder).replace(
        encode_password("Pw-of-hv1-9", "Password"), placeholder)
    assert rendered["autounattend.xml"] == expected


def test_the_rendered_answer_file_shows_where_the_password_is(tmp_path: Path) -> None:
    xml = rendered_medium()["autounattend.xml"]
    shell = components(xml)[("oobeSystem", "Microsoft-Windows-Shell-Setup")]
    shown = "<password of hv1: generated at the first up, kept in keys/hv1.password>"
    assert shell.findtext("u:UserAccounts/u:AdministratorPassword/u:Value", namespaces=NS) == (
        shown)
    assert shell.findtext("u:AutoLogon/u:Password/u:Value", namespaces=NS) == shown
    # ...and that is where up keeps it.
    password = l1_password(tmp_path, "hv1")
    assert (tmp_path / shown.rpartition("kept in ")[2].rstrip(">")).read_text() == password
