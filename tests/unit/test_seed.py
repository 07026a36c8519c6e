"""The seed medium carries the hostname and public key, read back by label and name."""

from __future__ import annotations

import subprocess
from pathlib import Path

from nestlab.build.seed import SEED_LABEL, read_seed_iso, write_seed_iso


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
