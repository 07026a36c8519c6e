"""`nestlab handout`: one student's folder for one lab (a seat), against the test driver
with FAKE L1s: two seats of one course, each handout opening its own seat only."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import threading
from pathlib import Path

import libvirt
import paramiko
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nestlab.cli import main
from nestlab.state.keys import known_hosts_path, private_key_path
from tests.conftest import EXAMPLES
from tests.fakes.lab import bring_up, fake_l1s
from tests.integration.test_windows_lab import up_with_fake_l1s

SEATS = ("course-s01", "course-s02")


def nestlab(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def host_key_line(name: str) -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return f"{name} " + key.public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


@pytest.fixture
def seats(tmp_path: Path, l0: libvirt.virConnect, home: Path,
          monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Two seats of the example lab up (each its own lab, the same guest names, FAKE L1s
    per seat), each with its guests' host keys pinned; their lab folders by name."""
    fake_l1s(monkeypatch, l0, key=lambda host: host.domain_name)  # the seat's lab is in it
    folders = {}
    text = (EXAMPLES / "linux-nested.yaml").read_text()
    for number, name in enumerate(SEATS, start=1):
        lab_file = tmp_path / f"{name}.yaml"
        lab_file.write_text(text.replace("lab: linux-nested", f"lab: {name}")
                            .replace("10.77.0.0/24", f"10.77.{number}.0/24"))
        bring_up(lab_file, home)
        folders[name] = home / "labs" / name
        known_hosts_path(folders[name]).write_text(
            "\n".join(host_key_line(g) for g in ("kvm1", "prime1", "other")) + "\n")
    return folders


def handout(tmp_path: Path, lab: str, *more: str) -> Path:
    out = tmp_path / f"handout-{lab}"
    code, _out, err = nestlab("handout", "--lab", lab, "--out", str(out), *more)
    assert code == 0, err
    return out


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_handout_has_the_seats_key_pinned_host_keys_config_and_readme(
        tmp_path: Path, seats: dict[str, Path]) -> None:
    out = handout(tmp_path, "course-s01", "--jump", "student@lab.example.edu:2222")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.txt", "connect.sh", "id_ed25519", "id_ed25519.pub", "known_hosts",
        "ssh_config"]
    assert mode(out) == 0o700
    assert mode(out / "id_ed25519") == 0o600 and mode(out / "known_hosts") == 0o600
    assert mode(out / "connect.sh") == 0o700
    lab = seats["course-s01"]
    assert (out / "id_ed25519").read_bytes() == private_key_path(lab).read_bytes()
    assert not list(tmp_path.glob(".handout-*"))  # no staging folder left

    pinned = (known_hosts_path(lab)).read_text().splitlines()
    assert (out / "known_hosts").read_text().splitlines() == pinned[:2]  # not "other"

    config = paramiko.SSHConfig.from_path(str(out / "ssh_config"))
    jump = config.lookup("nestlab-jump")
    assert (jump["hostname"], jump["port"], jump["user"]) == ("lab.example.edu", "2222",
                                                             "student")
    kvm1, prime1 = config.lookup("kvm1"), config.lookup("prime1")
    assert kvm1["hostname"] == "10.77.1.10" and kvm1["proxyjump"] == "nestlab-jump"
    assert prime1["hostname"].startswith("192.168.100.") and prime1["proxyjump"] == "kvm1"
    for name, entry in (("kvm1", kvm1), ("prime1", prime1)):
        assert entry["identityfile"] == ["id_ed25519"]
        assert entry["identitiesonly"] == "yes"
        assert entry["userknownhostsfile"] == "known_hosts"
        assert entry["hostkeyalias"] == name
        assert entry["stricthostkeychecking"] == "yes"
        assert entry["user"] == "root"

    readme = (out / "README.txt").read_text()
    assert "course-s01" in readme and "10.77.1.10" in readme and prime1["hostname"] in readme
    assert "ssh -F ssh_config NAME" in readme and "student@lab.example.edu" in readme


def test_openssh_reads_the_config_as_meant(tmp_path: Path, seats: dict[str, Path]) -> None:
    """`ssh -G` resolves the config without connecting: the L2 through its L1, the L1
    through the jump host, the handout's own files."""
    out = handout(tmp_path, "course-s01", "--jump", "student@lab.example.edu")
    resolved = {}
    for name in ("kvm1", "prime1"):
        run = subprocess.run(["ssh", "-F", "ssh_config", "-G", name], cwd=out,
                             capture_output=True, text=True, check=True)
        resolved[name] = dict(line.split(" ", 1) for line in run.stdout.splitlines()
                              if " " in line)
    assert resolved["kvm1"]["proxyjump"] == "nestlab-jump"
    assert resolved["prime1"]["proxyjump"] == "kvm1"
    for name, options in resolved.items():
        assert options["identityfile"] == "id_ed25519"
        assert options["userknownhostsfile"] == "known_hosts"
        assert options["hostkeyalias"] == name
        assert options["stricthostkeychecking"] == "true"
        assert options["identitiesonly"] == "yes"


def banner_server() -> tuple[int, threading.Thread]:
    """A loopback port that answers as an SSH server would start to, then hangs up: enough
    for ssh to load its identities, and reports which it found (``ssh -v``)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def serve() -> None:
        with server:
            connection, _ = server.accept()
            with connection:
                connection.sendall(b"SSH-2.0-banner\r\n")
                connection.recv(256)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server.getsockname()[1], thread


def identities_loaded(argv: list[str], cwd: Path) -> list[str]:
    port, thread = banner_server()
    # Loopback only, and no jump host: nothing leaves this machine's own namespace.
    run = subprocess.run([*argv, "-v", "-o", "HostName=127.0.0.1", "-o", f"Port={port}",
                          "-o", "ProxyJump=none", "-o", "BatchMode=yes", "kvm1", "true"],
                         cwd=cwd, capture_output=True, text=True, timeout=30)
    thread.join(10)
    return [line.split(":", 1)[1].strip() for line in run.stderr.splitlines()
            if line.startswith("debug1: identity file id_ed25519 type")]


def test_openssh_finds_the_handouts_key_from_its_folder_or_through_connect_sh(
        tmp_path: Path, seats: dict[str, Path]) -> None:
    """OpenSSH opens a relative IdentityFile from the current folder (not the config's):
    from elsewhere `ssh -F` misses the key, connect.sh finds it. Loopback only: the
    guest's address is overridden on the command line."""
    out = handout(tmp_path, "course-s01")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert identities_loaded(["ssh", "-F", "ssh_config"], out) == [
        "identity file id_ed25519 type 3"]  # 3: an ed25519 key was read
    assert identities_loaded(["ssh", "-F", str(out / "ssh_config")], elsewhere) == [
        "identity file id_ed25519 type -1"]  # -1: none there
    assert identities_loaded([str(out / "connect.sh")], elsewhere) == [
        "identity file id_ed25519 type 3"]


def test_json_names_the_folder_its_files_and_guests(tmp_path: Path,
                                                    seats: dict[str, Path]) -> None:
    code, out, err = nestlab("handout", "--lab", "course-s01", "--out", str(tmp_path / "h"),
                             "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "lab": "course-s01", "folder": str(tmp_path / "h"),
        "files": ["id_ed25519", "id_ed25519.pub", "known_hosts", "ssh_config", "connect.sh",
                  "README.txt"],
        "ssh": ["kvm1", "prime1"], "windows": []}


def test_without_a_jump_host_an_l1_is_reached_at_its_address(
        tmp_path: Path, seats: dict[str, Path]) -> None:
    config = paramiko.SSHConfig.from_path(str(handout(tmp_path, "course-s02") / "ssh_config"))
    assert config.lookup("kvm1")["hostname"] == "10.77.2.10"
    assert "proxyjump" not in config.lookup("kvm1")
    assert "nestlab-jump" not in (tmp_path / "handout-course-s02" / "ssh_config").read_text()


def test_no_seats_handout_opens_another_seat(tmp_path: Path, seats: dict[str, Path]) -> None:
    one, two = handout(tmp_path, "course-s01"), handout(tmp_path, "course-s02")
    assert (one / "id_ed25519").read_bytes() != (two / "id_ed25519").read_bytes()
    assert (two / "id_ed25519").read_bytes() == private_key_path(seats["course-s02"]
                                                                 ).read_bytes()
    keys_of = {p.name: set((p / "known_hosts").read_text().splitlines()) for p in (one, two)}
    assert not keys_of[one.name] & keys_of[two.name]
    everything_of_one = b"".join(p.read_bytes() for p in one.iterdir())
    assert b"course-s02" not in everything_of_one and b"10.77.2." not in everything_of_one
    for line in (two / "known_hosts").read_text().splitlines():
        assert line.split()[2].encode() not in everything_of_one


def test_an_existing_folder_that_is_not_empty_is_refused(
        tmp_path: Path, seats: dict[str, Path]) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    code, _out, err = nestlab("handout", "--lab", "course-s01", "--out", str(out))
    assert code == 2 and "the folder is not empty" in err and "hint:" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert handout(tmp_path, "course-s01") and nestlab(
        "handout", "--lab", "course-s01", "--out", str(empty))[0] == 0
    assert (empty / "ssh_config").exists()


def test_a_guest_without_a_pinned_key_leaves_no_folder(
        tmp_path: Path, seats: dict[str, Path]) -> None:
    known_hosts_path(seats["course-s01"]).write_text(host_key_line("kvm1") + "\n")
    out = tmp_path / "h"
    code, _out, err = nestlab("handout", "--lab", "course-s01", "--out", str(out))
    assert code == 1 and "no pinned SSH host key for prime1" in err
    assert "nestlab exec --lab course-s01 prime1 -- true" in err
    assert not out.exists() and not list(tmp_path.glob(".h.*"))


def test_a_lab_that_is_not_up_and_bad_input_are_refused(
        tmp_path: Path, home: Path) -> None:
    out = tmp_path / "h"
    code, _out, err = nestlab("handout", "--lab", "nosuch", "--out", str(out))
    assert code == 2 and "no such lab 'nosuch'" in err and not out.exists()
    code, _out, err = nestlab("handout", "--lab", "nosuch", "--out", str(out),
                              "--jump", "student@host;rm -rf /")
    assert code == 2 and "is not USER@HOST[:PORT]" in err


def test_a_sandboxed_lab_is_refused_saying_why(tmp_path: Path, seats: dict[str, Path]) -> None:
    record = seats["course-s01"] / "lab.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps(data | {"sandbox": True, "netns": "nestlab-course-s01"}))
    code, _out, err = nestlab("handout", "--lab", "course-s01", "--out", str(tmp_path / "h"))
    assert code == 1 and "runs in a sandbox" in err and "without --sandbox" in err
    assert not (tmp_path / "h").exists()


def test_a_windows_lab_gets_its_administrator_password_and_how_to_reach_winrm(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, l0: libvirt.virConnect,
        home: Path) -> None:
    up_with_fake_l1s(monkeypatch, home, EXAMPLES / "windows-hyperv.yaml")
    out = handout(tmp_path, "windows-hyperv", "--jump", "student@lab.example.edu")
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "hv1.password", "hv1.vnc"]
    keys = home / "labs" / "windows-hyperv" / "keys"
    assert (out / "hv1.password").read_text() == (keys / "hv1.password").read_text()
    assert mode(out / "hv1.password") == 0o600 and mode(out) == 0o700
    readme = (out / "README.txt").read_text()
    assert "user Administrator, password in hv1.password" in readme
    assert "ssh -p 22 student@lab.example.edu -N -L 5985:10.78.0.10:5985" in readme
    assert (keys / "hv1.password").read_text() not in readme
    assert "password in hv1.vnc" in readme
    assert "authorized_keys" not in readme and "Administrator's password" in readme
