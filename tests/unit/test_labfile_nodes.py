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
    assert any("nodes[1].weight: expected a whole number from 1 to 100, got 0" in p
               for p in found)
    assert any("nodes[1].max_seats: expected a whole number from 1 to 40, got '3'" in p
               for p in found)
    found = problems(with_nodes("""\
        - name: node1
          uri: qemu+ssh://root@a/system
        - name: node1
          uri: qemu+ssh://root@a/system
        """))
    assert [p.split(": ", 1)[1] for p in found] == [
        "nodes[1].name: duplicate node name 'node1'",
        "nodes[1].uri: duplicate node uri 'qemu+ssh://root@a/system'"]


_LIST = ("expected a list of nodes, each with name: and uri: (like `- name: node1` and "
         "`uri: qemu+ssh://root@node1/system` under it), got ")
_ITEM = ("expected a node with name: and uri:, like {name: node1, uri: "
         "qemu+ssh://root@node1/system}, got ")
_NODE = "{name: n1, uri: 'qemu+ssh://root@n1/system'"


@pytest.mark.parametrize(("nodes", "expected"), [
    ("nodes: [qemu+ssh://root@n1/system]", "nodes[0]: " + _ITEM + "'qemu+ssh://root@n1/system'"),
    ("nodes: qemu+ssh://root@n1/system", "nodes: " + _LIST + "'qemu+ssh://root@n1/system'"),
    ("nodes: {name: n1, uri: 'qemu+ssh://root@n1/system'}",
     "nodes: " + _LIST + "{'name': 'n1', 'uri': 'qemu+ssh://root@n1/system'}"),
    ("nodes: 3", "nodes: " + _LIST + "3"),
    ("nodes:", "nodes: " + _LIST + "nothing"),
    ("nodes: [3]", "nodes[0]: " + _ITEM + "3"),
    ("nodes: [[a]]", "nodes[0]: " + _ITEM + "['a']"),
    ("nodes: [" + _NODE.replace("n1", "5", 1) + "}]",
     "nodes[0].name: 5 is not a valid name: use lower-case letters, digits and '-', "
     "starting with a letter and not ending with '-'"),
    ("nodes: [" + _NODE.replace("n1", "n" * 21, 1) + "}]",
     "nodes[0].name: '" + "n" * 21 + "' is not a valid name: at most 20 characters"),
    ("nodes: [" + _NODE.replace("n1", "''", 1) + "}]",
     "nodes[0].name: '' is not a valid name: use lower-case letters, digits and '-', "
     "starting with a letter and not ending with '-'"),
    ("nodes: [" + _NODE + ", weight: }]",
     "nodes[0].weight: expected a whole number from 1 to 100, got nothing"),
    ("nodes: [" + _NODE + ", weight: two}]",
     "nodes[0].weight: expected a whole number from 1 to 100, got 'two'"),
    ("nodes: [" + _NODE + ", weight: 1.5}]",
     "nodes[0].weight: expected a whole number from 1 to 100, got 1.5"),
    ("nodes: [" + _NODE + ", weight: yes}]",
     "nodes[0].weight: expected a whole number from 1 to 100, got True"),
    ("nodes: [" + _NODE + ", weight: 1000}]",
     "nodes[0].weight: expected a whole number from 1 to 100, got 1000"),
    ("nodes: [" + _NODE + ", max_seats: 0}]",
     "nodes[0].max_seats: expected a whole number from 1 to 40, got 0"),
    ("nodes: [" + ", ".join(f"{{name: n{i}, uri: 'qemu+ssh://root@n{i}/system'}}"
                            for i in range(33)) + "]",
     "nodes: at most 32 nodes, got 33"),
])
def test_every_bad_nodes_value_gets_one_message_with_what_was_expected(
        nodes: str, expected: str) -> None:
    assert problems(BASE + nodes + "\n") == [f"lab.yaml:11: {expected}"]
