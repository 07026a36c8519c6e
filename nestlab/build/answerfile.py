"""Windows answer files and their media: the install-time autounattend.xml of the
base image, and each L1's first-boot answer file with its own password.

Passwords are generated here, stored 0600 in the lab's key folder, and only
ever written into answer media that are themselves 0600.
"""

from __future__ import annotations

import base64
import secrets
import string
from pathlib import Path
from typing import Literal

from nestlab.build.seed import write_seed_iso
from nestlab.files import kept_secret
from nestlab.lab.systems import OS
from nestlab.render import (
    LOCALE,
    AnswerPassword,
    l1_answer_medium,
    powershell_script,
    render_l1_answer_xml,
    render_template,
)

EDITIONS = {"standard": "SERVERSTANDARD", "datacenter": "SERVERDATACENTER"}
"""The install.wim image of each edition with the Desktop Experience, after the version
('Windows Server 2022 SERVERSTANDARD'); the Core images end in CORE. The same names on
2016, 2019 and 2022 (docs/windows-versions.md)."""
ANSWER_LABEL = "NLANSWER"


def encode_password(password: str, field: Literal["AdministratorPassword", "Password"]) -> str:
    """What answer files store with PlainText=false: base64 of UTF-16LE(password + field)."""
    return base64.b64encode((password + field).encode("utf-16-le")).decode()


def answer_password(password: str) -> AnswerPassword:
    """The password as an answer file's two fields store it."""
    return AnswerPassword(encode_password(password, "AdministratorPassword"),
                          encode_password(password, "Password"))


def generate_password() -> str:
    """24 characters with all four classes Windows' complexity rule counts."""
    alphabet = string.ascii_letters + string.digits
    core = "".join(secrets.choice(alphabet) for _ in range(20))
    return core + secrets.choice(string.ascii_uppercase) + secrets.choice(
        string.ascii_lowercase) + secrets.choice(string.digits) + secrets.choice("-_.+")


def l1_password_path(lab_dir: Path, host: str) -> Path:
    return lab_dir / "keys" / f"{host}.password"


def l1_password(lab_dir: Path, host: str) -> str:
    """The Administrator password of one Windows L1 of the lab (created once, 0600). An
    empty file (left by an older nestlab) is made anew: nothing can have used it."""
    return kept_secret(l1_password_path(lab_dir, host), generate_password, bool,
                       "password file")


def install_image_name(version: OS, edition: str) -> str:
    """The image of the ISO's install.wim that setup installs: 'Windows Server 2022
    SERVERSTANDARD'. It is all that differs between the versions' answer files."""
    return f"{version.profile.product} {EDITIONS[edition]}"


def render_install_answer(version: OS, edition: str, password: str) -> str:
    """autounattend.xml for the base-image build (runs build.ps1, which sysprep-s)."""
    encoded = answer_password(password)
    return render_template(
        "windows/autounattend.xml.j2", locale=LOCALE,
        image_name=install_image_name(version, edition),
        admin_password_value=encoded.administrator,
        autologon_password_value=encoded.autologon, script="build.ps1")


def render_l1_answer(computer_name: str, password: str) -> str:
    """The first-boot answer file of one L1 (named autounattend.xml on its medium)."""
    return render_l1_answer_xml(computer_name, answer_password(password))


def write_install_medium(path: Path, version: OS, edition: str, password: str) -> None:
    write_seed_iso(path, {"autounattend.xml": render_install_answer(version, edition, password),
                          "build.ps1": powershell_script("build")},
                   label=ANSWER_LABEL, mode=0o600)


def write_l1_medium(path: Path, computer_name: str, password: str) -> None:
    """The medium ``up`` gives a Windows L1 (``nestlab render`` shows the same files)."""
    write_seed_iso(path, l1_answer_medium(computer_name, answer_password(password)),
                   label=ANSWER_LABEL, mode=0o600)
