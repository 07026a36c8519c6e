"""The lab file: valid files become frozen objects, bad ones one clear message each."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pydantic
import pytest

from nestlab.errors import InputError, LabFileError
from nestlab.lab.labfile import LAB_FILE_LIMIT, load_lab, parse_lab
from nestlab.lab.model import Accel, GiB, MiB
from nestlab.lab.systems import OS
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
    assert windows.hosts[0].os.profile.family == "windows"
    assert [g.name for g in windows.hosts[0].guests] == ["prime1", "prime2"]


def test_defaults_follow_the_os() -> None:
    lab = parse_lab(GOOD)
    host = lab.hosts[0]
    assert host.os.profile.family == "linux"
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


def test_the_transport_key_is_gone() -> None:
    # It was accepted and ignored (a debian-12 L1 with `transport: winrm`); an L1's driver
    # decides how it is reached.
    text = GOOD.replace("    networks: [lab]\n", "    networks: [lab]\n    transport: winrm\n")
    assert problems(text) == ["lab.yaml:10: hosts[0].transport: unknown key"]


def test_bridged_l2_network_on_a_linux_l1_is_refused() -> None:
    text = GOOD.replace("    networks: [lab]\n",
                        "    networks: [lab]\n    guest_network:\n      mode: bridged\n")
    [message] = problems(text)
    assert message.startswith("lab.yaml:11: hosts[0].guest_network.mode: bridged L2 networks")


@pytest.mark.parametrize("year", [2016, 2019, 2022])
def test_each_windows_server_is_an_l1_os_with_its_own_base_image(year: int) -> None:
    text = GOOD.replace("os: debian-12", f"os: windows-server-{year}").replace(
        "memory: 3GiB", "memory: 2GiB")
    assert (f"lab.yaml:8: hosts[0].memory: a Windows Server {year} L1 with Hyper-V needs at "
            "least 4GiB, got 2GiB") in problems(text)
    host = parse_lab(text.replace("memory: 2GiB", "memory: 8GiB")).hosts[0]
    assert host.base_image == f"windows-server-{year}"


def test_windows_computer_names_fit_netbios() -> None:
    text = GOOD.replace("os: debian-12", "os: windows-server-2016").replace(
        "memory: 3GiB", "memory: 8GiB").replace("name: kvm1", "name: hyperv-host-0001")
    assert problems(text) == [
        "lab.yaml:6: hosts[0].name: 'hyperv-host-0001' is too long: a Windows computer "
        "name (NetBIOS) has at most 15 characters"]


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
    assert any("hosts[0].os: Input should be 'windows-server-2016', 'windows-server-2019', "
               "'windows-server-2022' or 'debian-12'" in m for m in messages)


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


def test_missing_file() -> None:
    with pytest.raises(InputError) as info:
        load_lab("/nonexistent/nestlab.yaml")
    assert info.value.exit_code == 2
    assert info.value.message == "/nonexistent/nestlab.yaml: no such lab file"


def test_empty_lists_are_refused() -> None:
    assert problems("lab: demo\nnetworks: []\nhosts: []\n") == [
        "lab.yaml:2: networks: a lab needs at least one network",
        "lab.yaml:3: hosts: a lab needs at least one host",
    ]


# Hostile files (issue #7): each is one short problem with its line, quickly.

def laughs(levels: int) -> str:
    """The "billion laughs": each level is nine aliases of the one before."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("text", "expected"), [
    ("lab: !foo x\n",
     "lab.yaml:1: cannot read this value: could not determine a constructor for the tag '!foo'"),
    ("lab: !!bool x\n", "lab.yaml:1: cannot read 'x' as !!bool"),
    ("lab: !!timestamp 2020-99-99\n",
     "lab.yaml:1: cannot read '2020-99-99' as !!timestamp: month must be in 1..12"),
    ("a: {<<: 5}\n", "lab.yaml:1: cannot read this value: expected a mapping or list of "
     "mappings for merging, but found scalar"),
    ("lab: demo\ncpus: " + "9" * 4301 + "\n",
     "lab.yaml:2: an integer of 4301 characters is too large"),
    ("lab: " + "[" * 600 + "]" * 600 + "\n", "lab.yaml:1: nested more than 32 levels deep"),
    ("? [a]\n: 1\n", "lab.yaml:1: a key must be a name, not a list or mapping"),
    ("a: &a [*a]\n", "lab.yaml:1: alias *a is used inside the value it names; a recursive "
     "structure cannot be a lab"),
    ("lab: demo\nhosts: \"\\x00\"\n\x00\n",
     "lab.yaml:3: not valid YAML: unacceptable character #x0000: special characters are not "
     "allowed"),
], ids=["unknown-tag", "bool-tag", "bad-timestamp", "merge-scalar", "4301-digits",
        "600-brackets", "complex-key", "recursive-alias", "nul"])
def test_hostile_yaml_is_one_located_problem(text: str, expected: str) -> None:
    assert problems(text) == [expected]


@pytest.mark.parametrize(("key", "tag"), [("1", "!!int"), ("null", "!!null"),
                                          ("2001-01-01", "!!timestamp"), ("!foo x", "!foo")])
def test_keys_yaml_reads_as_something_else_than_a_name(key: str, tag: str) -> None:
    [message] = problems(GOOD + f"{key}: 1\n")
    assert message.startswith("lab.yaml:13: ")
    assert message.endswith(f": a key must be a name; YAML reads this one as {tag}")


def test_nested_aliases_are_refused_quickly() -> None:
    started = time.monotonic()
    assert problems(laughs(5)) == [
        "lab.yaml:5: the document has more than 10000 values (an alias counts as everything it "
        "names, each time it is used); a lab file needs far fewer"]
    assert time.monotonic() - started < 1.0


def test_aliases_of_a_long_string_are_refused_quickly() -> None:
    text = f"a: &s {'x' * 100_000}\nb: [{', '.join(['*s'] * 20)}]\n"
    started = time.monotonic()
    [message] = problems(text)
    assert message.startswith("lab.yaml:2: the document's values add up to more than 1048576 "
                              "characters")
    assert time.monotonic() - started < 1.0


def test_aliases_and_merge_keys_within_bounds_still_work() -> None:
    text = GOOD.replace("      - name: prime1\n        memory: 256MiB\n",
                        "      - &small {name: prime1, memory: 200MiB, disk: 100MiB}\n"
                        "      - <<: *small\n        name: prime2\n")
    guests = parse_lab(text).hosts[0].guests
    assert [(g.name, g.memory, g.disk) for g in guests] == [
        ("prime1", 200 * MiB, 100 * MiB), ("prime2", 200 * MiB, 100 * MiB)]


def test_problem_count_and_length_are_bounded() -> None:
    bad_host = "{name: " + "X" * 500 + ", os: plan9, frobnicate: 1}"
    text = "lab: demo\nnetworks: []\nhosts: [" + ", ".join([bad_host] * 300) + "]\n"
    with pytest.raises(LabFileError) as info:
        parse_lab(text, "lab.yaml")
    message = info.value.message
    assert len(info.value.problems) > 20
    assert len(message) < 20 * 200
    assert message.splitlines()[-1] == f"  ... and {len(info.value.problems) - 20} more"
    assert "X" * 61 not in message  # values are cut to about 60 characters


def test_control_characters_in_keys_are_escaped() -> None:
    text = GOOD + '"\\x1b]0;pwned\\x07": 1\n'
    assert problems(text) == ["lab.yaml:13: \\x1b]0;pwned\\x07: unknown key"]
    # Escaping makes text 4 times longer: the cut comes after it.
    [line] = problems(GOOD + '"' + "\\e" * 300 + '": 1\n')
    assert line == "lab.yaml:13: " + ("\\x1b" * 20)[:77] + "...: unknown key"


def test_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "lab.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            load_lab(fifo)
            outcome.append(None)
        except Exception as exc:  # the outcome is asserted below
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # blocked in open(): give it a writer so the thread ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
    assert outcome, "load_lab did not return within 5 s"
    assert isinstance(outcome[0], InputError)
    assert outcome[0].message == f"{fifo}: the lab file is not a regular file"


def test_a_file_larger_than_a_lab_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "lab.yaml"
    big.write_text(GOOD + "# " + "x" * LAB_FILE_LIMIT + "\n")
    with pytest.raises(InputError) as info:
        load_lab(big)
    assert info.value.exit_code == 2
    assert info.value.message.endswith(f"bytes; at most {LAB_FILE_LIMIT} are accepted")


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_refused_in_bounded_memory(path: str) -> None:
    # In a child limited to 1 GiB of address space, so that a regression (reading
    # /dev/zero until memory runs out) fails this test instead of the machine.
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from nestlab.errors import InputError\n"
        "from nestlab.lab.labfile import load_lab\n"
        "try:\n"
        "    load_lab(sys.argv[1])\n"
        "except InputError as exc:\n"
        "    print(exc.message)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, path], capture_output=True,
                            text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout) == (0, f"{path}: the lab file is not a regular "
                                                     "file\n"), result.stderr[-500:]


@pytest.mark.parametrize(("cidr", "what"), [
    ("127.0.0.0/24", "loopback (127.0.0.0/8)"),
    ("224.0.0.0/24", "multicast (224.0.0.0/4)"),
    ("169.254.0.0/16", "link-local (169.254.0.0/16)"),
    ("240.0.0.0/24", "reserved (240.0.0.0/4"),
    ("255.255.0.0/16", "reserved (240.0.0.0/4"),
    ("0.0.0.0/16", "in 'this network' (0.0.0.0/8)"),
])
@pytest.mark.parametrize("where", ["network", "guest network"])
def test_cidrs_that_are_not_ordinary_unicast_are_refused(cidr: str, what: str,
                                                         where: str) -> None:
    if where == "network":
        text, key = GOOD.replace("10.90.0.0/24", cidr), "lab.yaml:4: networks[0].cidr"
    else:
        text = GOOD.replace("    networks: [lab]\n",
                            f"    networks: [lab]\n    guest_network:\n      cidr: {cidr}\n")
        key = "lab.yaml:11: hosts[0].guest_network.cidr"
    [message] = problems(text)
    assert message.startswith(f"{key}: {cidr} is {what}")
    assert message.endswith("take one from a private range: 10.0.0.0/8, 172.16.0.0/12 or "
                            "192.168.0.0/16")


@pytest.mark.parametrize("cidr", ["10.1.0.0/16", "172.31.255.0/24", "192.168.7.0/28",
                                  "100.64.0.0/24", "198.51.100.0/24"])
def test_private_and_other_unicast_cidrs_are_accepted(cidr: str) -> None:
    assert str(parse_lab(GOOD.replace("10.90.0.0/24", cidr)).networks[0].cidr) == cidr


def test_a_quoted_bare_number_is_not_a_size() -> None:
    assert problems(GOOD.replace("memory: 3GiB", 'memory: "8589934592"')) == [
        "lab.yaml:8: hosts[0].memory: expected a size with a unit, like 4GiB or 512MiB, "
        "got '8589934592'"]


@pytest.mark.parametrize("cpus", ["yes", '"2"', "2.0"])
def test_cpus_must_be_a_yaml_integer(cpus: str) -> None:
    text = GOOD.replace("memory: 3GiB", f"memory: 3GiB\n    cpus: {cpus}")
    assert problems(text) == ["lab.yaml:9: hosts[0].cpus: Input should be a valid integer"]


def test_the_number_of_networks_is_bounded() -> None:
    networks = "".join(f"  - {{name: n{i}, cidr: 10.{i}.0.0/24}}\n" for i in range(65))
    text = GOOD.replace("  - name: lab\n    cidr: 10.90.0.0/24\n", networks).replace(
        "networks: [lab]", "networks: [n0]")
    assert problems(text) == [
        "lab.yaml:2: networks: at most 64 entries, more than one L0 host runs; got 65"]
