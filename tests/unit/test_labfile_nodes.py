"""`nodes:` in the lab file: libvirt URIs of the hosts a lab's seats may be placed on,
each bad one refused with the file, the key and what was expected."""

from __future__ import annotations

import textwrap

import pytest

from nestlab.errors import LabFileError
from nestlab.lab.labfile import parse_lab

BASE = """\
lab: course
seats: 2
networks:
  - name: lab
    cidr: 10.90.0.0/24
hosts:
  - name: kvm1
    os: debian-12
    memory: 1GiB
    networks: [lab]
"""


def with_nodes(nodes: str) -> str:
    return BASE + "nodes:\n" + textwrap.indent(textwrap.dedent(nodes), "  ")


def problems(text: str) -> list[str]:
    with pytest.raises(LabFileError) as info:
        parse_lab(text, "lab.yaml")
    return [p.describe("lab.yaml") for p in info.value.problems]


def test_nodes_with_weights_and_limits_are_read() -> None:
    lab = parse_lab(with_nodes("""\
        - name: node1
          uri: qemu+ssh://root@node1.example/system
        - name: node2
          uri: qemu+ssh://admin@192.0.2.7:2222/system
          weight: 2
          max_seats: 10
        """))
    assert [(n.name, n.uri, n.weight, n.max_seats) for n in lab.nodes] == [
        ("node1", "qemu+ssh://root@node1.example/system", 1, None),
        ("node2", "qemu+ssh://admin@192.0.2.7:2222/system", 2, 10)]


def test_a_lab_without_nodes_has_none() -> None:
    assert parse_lab(BASE).nodes == ()


@pytest.mark.parametrize(("uri", "expected"), [
    ("ssh://root@node1/system", "expected a libvirt URI over SSH like "
                                "qemu+ssh://root@node1/system (or qemu:///system"),
    # Neither facts nor guests could be reached through a node without SSH.
    ("qemu+tcp://node1/system", "expected a libvirt URI over SSH"),
    ("qemu+tls://node1/system", "expected a libvirt URI over SSH"),
    ("qemu+ssh://root@node1:abc/system", "the port after the host must be a number from 1 "
                                          "to 65535"),
    ("qemu+ssh://root@node1:99999/system", "the port after the host must be a number"),
    ("node1", "expected a libvirt URI"),
    ("qemu+ssh:///system", "names no host: a remote URI is qemu+ssh://USER@HOST[:PORT]"),
    ("qemu+ssh://root@/system", "names no host"),
    ("qemu+ssh://root@node1/system; rm -rf /", "expected a libvirt URI"),
    ("qemu+ssh://root@node1/sys\x1b[2J", "expected a libvirt URI"),
])
def test_bad_uris_name_the_key_and_what_is_expected(uri: str, expected: str) -> None:
    found = problems(with_nodes(f"""\
        - name: node1
          uri: {uri!r}
        """).replace("'", '"') if "\x1b" not in uri else
        with_nodes('- name: node1\n  uri: "qemu+ssh://root@node1/sys\\e[2J"\n'))
    assert len(found) == 1
    assert found[0].startswith("lab.yaml:1") and " nodes[0].uri: " in found[0]
    assert expected in found[0]


def test_a_uri_that_is_not_a_string_is_refused() -> None:
    found = problems(with_nodes("- name: node1\n  uri: 42\n"))
    assert found == ["lab.yaml:13: nodes[0].uri: expected a libvirt URI over SSH like "
                     "qemu+ssh://root@node1/system (or qemu:///system for this host), got 42"]


def test_duplicate_names_and_uris_and_bad_limits() -> None:
    found = problems(with_nodes("""\
        - name: node1
          uri: qemu+ssh://root@a/system
        - name: node1
          uri: qemu+ssh://root@a/system
          weight: 0
          max_seats: "3"
        """))
    assert any("nodes[1].weight: Input should be greater than or equal to 1" in p
               for p in found)
    assert any("nodes[1].max_seats: Input should be a valid integer" in p for p in found)
    found = problems(with_nodes("""\
        - name: node1
          uri: qemu+ssh://root@a/system
        - name: node1
          uri: qemu+ssh://root@a/system
        """))
    assert [p.split(": ", 1)[1] for p in found] == [
        "nodes[1].name: duplicate node name 'node1'",
        "nodes[1].uri: duplicate node uri 'qemu+ssh://root@a/system'"]
