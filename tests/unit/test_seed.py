"""The seed medium carries the hostname, the lab's public key and the L1's host key, read
back by label and name."""

from __future__ import annotations

import io
import stat
import subprocess
from pathlib import Path

import paramiko
import pytest

from nestlab.build.seed import SEED_LABEL, read_seed_iso, write_seed_iso
from nestlab.host.check import check_host
from nestlab.plan import make_plan
from nestlab.state.keys import HostKeyChanged, PinningPolicy, known_hosts_path, new_host_key
from nestlab.virt.disks import ensure_seed
from tests.conftest import example, facts


def test_seed_round_trip(tmp_path: Path) -> None:
    iso = tmp_path / "seed.iso"
    files = {"hostname": "kvm1\n", "authorized_keys": "ssh-ed25519 AAAA lab\n"}
    write_seed_iso(iso, files)
    assert read_seed_iso(iso) == files
    assert iso.read_bytes()[0x8028:0x8028 + len(SEED_LABEL)] == SEED_LABEL.encode()


def test_seed_label_as_blkid_sees_it(tmp_path: Path) -> None:
    iso = tmp_path / "seed.iso"
    write_seed_iso(iso, {"hostname": "x\n"})
    out = subprocess.run(["blkid", "-o", "value", "-s", "LABEL", str(iso)],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == SEED_LABEL


def test_an_l1s_seed_brings_the_host_key_pinned_before_it_boots(tmp_path: Path) -> None:
    lab = example("linux-nested")
    plan = make_plan(lab, check_host(facts("this-machine-paravirtual-kvm"), lab)
                     .decide(lab.name), tmp_path / "lab")
    [host] = plan.hosts
    host.seed_path.parent.mkdir(parents=True)
    known_hosts_path(tmp_path / "lab").parent.mkdir(parents=True)
    known_hosts_path(tmp_path / "lab").write_text("kvm1 ssh-ed25519 AAAAold\n")  # a rebuild's
    assert ensure_seed(host, "ssh-ed25519 AAAAlab lab", tmp_path / "lab")
    assert stat.S_IMODE(host.seed_path.stat().st_mode) == 0o600  # it holds the host key
    seed = read_seed_iso(host.seed_path)
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(seed["ssh_host_ed25519_key"]))
    assert seed["ssh_host_ed25519_key.pub"].split() == [key.get_name(), key.get_base64()]
    assert seed["authorized_keys"] == "ssh-ed25519 AAAAlab lab\n"
    # The first contact is checked against it: the L1's key passes, any other is refused.
    policy = PinningPolicy(known_hosts_path(tmp_path / "lab"))
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts_path(tmp_path / "lab")))
    assert client.get_host_keys().lookup("kvm1")[key.get_name()] == key  # type: ignore[index]
    with pytest.raises(HostKeyChanged):
        policy.missing_host_key(paramiko.SSHClient(), "kvm1", paramiko.Ed25519Key
                                .from_private_key(io.StringIO(new_host_key("kvm1")[0])))
    assert not ensure_seed(host, "ssh-ed25519 AAAAlab lab", tmp_path / "lab")  # made once
