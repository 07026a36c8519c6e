"""The lab file: valid files become frozen objects, bad ones one clear message each."""

from __future__ import annotations

import textwrap

import pydantic
import pytest

from nestlab.errors import LabFileError
from nestlab.labfile import load_lab, parse_lab
from nestlab.model import OS, Accel, GiB, MiB, Transport
from tests.conftest import EXAMPLES

GOOD = """\
lab: demo
networks:
  - name: lab
    cidr: 10.90.0.0/24
hosts:
  - name: kvm1
    os: debian-12
    memory: 3GiB
    networks: [lab]
    guests:
      - name: prime1
        memory: 256MiB
"""


def problems(text: str) -> list[str]:
    with pytest.raises(LabFileError) as info:
        parse_lab(textwrap.dedent(text), "lab.yaml")
    return [p.describe("lab.yaml") for p in info.value.problems]


def test_examples_load() -> None:
    linux = load_lab(EXAMPLES / "linux-nested.yaml")
    assert linux.hosts[0].os is OS.debian_12
    assert linux.hosts[0].guests[0].memory == 256 * MiB
    windows = load_lab(EXAMPLES / "windows-hyperv.yaml")
    assert windows.has_windows
    assert [g.name for g in windows.hosts[0].guests] == ["prime1", "prime2"]


def test_defaults_follow_the_os() -> None:
    lab = parse_lab(GOOD)
    host = lab.hosts[0]
    assert host.transport_kind is Transport.ssh
    assert host.base_image == "debian-12"
    assert host.cpus is None  # decided by the plan: 1 under tcg, 2 under kvm
    assert lab.accel is Accel.auto
    assert host.memory == 3 * GiB


def test_lab_is_frozen() -> None:
    lab = parse_lab(GOOD)
    with pytest.raises(pydantic.ValidationError):
        lab.hosts[0].memory = 1  # type: ignore[misc]


def test_unknown_key_names_path_and_line() -> None:
    text = GOOD.replace("    memory: 3GiB\n", "    memory: 3GiB\n    memroy: 4GiB\n")
    assert problems(text) == ["lab.yaml:9: hosts[0].memroy: unknown key"]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("8", "expected a size with a unit, like 4GiB or 512MiB, got 8"),
        ("lots", "expected a size with a unit, like 4GiB or 512MiB, got 'lots'"),
        ("3 parsecs", "expected a size with a unit, like 4GiB or 512MiB, got '3 parsecs'"),
        ("64MiB", "memory must be at least 128MiB"),
    ],
)
def test_bad_sizes(size: str, expected: str) -> None:
    text = GOOD.replace("memory: 3GiB", f"memory: {size}")
    assert problems(text) == [f"lab.yaml:8: hosts[0].memory: {expected}"]


def test_sizes_accept_binary_and_decimal_units() -> None:
    lab = parse_lab(GOOD.replace("memory: 3GiB", "memory: 3.5 GiB").replace(
        "memory: 256MiB", "memory: 300MB"))
    assert lab.hosts[0].memory == int(3.5 * GiB)
    assert lab.hosts[0].guests[0].memory == 300_000_000


@pytest.mark.parametrize("name", ["Kvm1", "kvm_1", "-kvm", "kvm-", "1kvm", "a" * 21])
def test_names_libvirt_and_dns_would_reject(name: str) -> None:
    [message] = problems(GOOD.replace("name: kvm1", f"name: {name}"))
    assert message.startswith("lab.yaml:6: hosts[0].name: ")
    assert "not a valid name" in message or "at most 20 characters" in message


def test_overlapping_cidrs() -> None:
    text = GOOD.replace(
        "    cidr: 10.90.0.0/24\n",
        "    cidr: 10.90.0.0/24\n  - name: other\n    cidr: 10.90.0.128/25\n",
    )
    assert problems(text) == [
        "lab.yaml:6: networks[1].cidr: 10.90.0.128/25 overlaps 10.90.0.0/24 of network 'lab'"
    ]


def test_cidr_must_be_a_network() -> None:
    [message] = problems(GOOD.replace("10.90.0.0/24", "10.90.0.5/24"))
    assert message.startswith("lab.yaml:4: networks[0].cidr: expected an IPv4 CIDR")


def test_guest_network_must_not_overlap_the_hosts_network() -> None:
    text = GOOD.replace(
        "    networks: [lab]\n",
        "    networks: [lab]\n    guest_network:\n      cidr: 10.90.0.0/25\n",
    )
    [message] = problems(text)
    assert message.startswith("lab.yaml:11: hosts[0].guest_network.cidr: 10.90.0.0/25 overlaps")


def test_l2_memory_must_fit_in_its_l1() -> None:
    text = GOOD.replace("memory: 256MiB", "memory: 3GiB")
    assert problems(text) == [
        "lab.yaml:8: hosts[0].memory: its L2 guests need 3GiB and the L1 keeps 768MiB for "
        "itself, but it has 3GiB"
    ]


def test_windows_l1_needs_4_gib() -> None:
    text = GOOD.replace("os: debian-12", "os: windows-server-2016").replace(
        "memory: 3GiB", "memory: 3GiB"
    )
    messages = problems(text)
    assert (
        "lab.yaml:8: hosts[0].memory: a Windows Server 2016 L1 with Hyper-V needs at least "
        "4GiB, got 3GiB"
    ) in messages


def test_bridged_l2_network_on_a_linux_l1_is_refused() -> None:
    text = GOOD.replace("    networks: [lab]\n",
                        "    networks: [lab]\n    guest_network:\n      mode: bridged\n")
    [message] = problems(text)
    assert message.startswith("lab.yaml:11: hosts[0].guest_network.mode: bridged L2 networks")


def test_windows_computer_names_fit_netbios() -> None:
    text = GOOD.replace("os: debian-12", "os: windows-server-2016").replace(
        "memory: 3GiB", "memory: 8GiB").replace("name: kvm1", "name: hyperv-host-0001")
    assert problems(text) == [
        "lab.yaml:6: hosts[0].name: 'hyperv-host-0001' is too long for a Windows computer "
        "name (NetBIOS: at most 15 characters)"]


def test_unknown_network_reference() -> None:
    assert problems(GOOD.replace("networks: [lab]", "networks: [labx]")) == [
        "lab.yaml:9: hosts[0].networks[0]: unknown network 'labx'; the lab defines: lab"
    ]


def test_duplicate_names_and_keys() -> None:
    text = GOOD + "      - name: prime1\n        memory: 256MiB\n"
    assert problems(text) == [
        "lab.yaml:13: hosts[0].guests[1].name: 'prime1' is already used in this lab; "
        "L1 and L2 names must be unique"
    ]
    dup_key = GOOD.replace("    os: debian-12\n", "    os: debian-12\n    os: debian-12\n")
    assert problems(dup_key) == ["lab.yaml:8: hosts[0].os: duplicate key"]


def test_every_problem_is_reported_at_once() -> None:
    text = GOOD.replace("memory: 3GiB", "memory: 3").replace("os: debian-12", "os: plan9")
    messages = problems(text)
    assert len(messages) == 2
    assert any("hosts[0].os: Input should be 'windows-server-2016' or 'debian-12'" in m
               for m in messages)


def test_yaml_syntax_error_gives_a_line() -> None:
    assert problems("lab: demo\nhosts: [\n  - x: 1\n") == [
        "lab.yaml:3: not valid YAML: expected the node content, but found '-'"
    ]


@pytest.mark.parametrize(("text", "expected"), [
    ("", "lab.yaml: the file is empty; expected a mapping"),
    ("- a\n- b\n", "lab.yaml:1: expected a mapping at the top level"),
])
def test_empty_or_wrong_shape(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_missing_file(tmp_path: object) -> None:
    with pytest.raises(LabFileError) as info:
        load_lab("/nonexistent/nestlab.yaml")
    assert info.value.exit_code == 2
    assert "/nonexistent/nestlab.yaml: no such file" in info.value.message


def test_empty_lists_are_refused() -> None:
    assert problems("lab: demo\nnetworks: []\nhosts: []\n") == [
        "lab.yaml:2: networks: a lab needs at least one network",
        "lab.yaml:3: hosts: a lab needs at least one host",
    ]
