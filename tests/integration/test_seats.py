"""A lab with seats through the command line: up of two seats (each its own lab) on
libvirt's test driver with FAKE L1s, one failing seat, up again, status rows, --seat,
and down of every seat leaving nothing (tests/integration/conftest.py)."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libvirt
import pytest

from nestlab.commands import seats as seats_module
from nestlab.host.facts import HostFacts
from nestlab.transport.base import Unreachable
from tests.fakes.lab import fake_l1s
from tests.fakes.linux import FakeLinuxL1
from tests.integration.conftest import cli_json, host_facts, inventory

COURSE = textwrap.dedent("""\
    lab: course
    seats: 2
    networks:
      - name: lab
        cidr: 10.81.0.0/24
    hosts:
      - name: kvm1
        os: debian-12
        memory: 1GiB
        networks: [lab]
        guests: [{name: prime1}]
""")
S1, S2 = "nestlab-course-s01-kvm1", "nestlab-course-s02-kvm1"


class NeverAnswers(FakeLinuxL1):
    """An L1 whose SSH never answers: its wait ends at once as a real one ends when its
    time is up (``Unreachable``), so the test does not wait 600 s."""

    def wait_until_reachable(self, timeout: float, waiting: Callable[[str], None] | None = None,
                             cancel: threading.Event | None = None) -> None:
        raise Unreachable(f"{self.name}: SSH: no answer in {timeout:.0f} s (fake)")


@pytest.fixture
def seat_l1s(monkeypatch: pytest.MonkeyPatch, l0: libvirt.virConnect) -> dict[str, FakeLinuxL1]:
    """The FAKE L1s by domain name: every seat has a kvm1 of its own."""
    monkeypatch.setattr(seats_module, "connect", lambda _uri: l0)
    return fake_l1s(monkeypatch, l0, key=lambda host: host.domain_name)


@pytest.fixture
def course(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lab file, and a host of 4 CPUs (both seats come up at once)."""
    four_cpus = host_facts("")
    four_cpus = four_cpus.model_copy(update={
        "cpu": four_cpus.cpu.model_copy(update={"count": 4})})

    def read(_uri: str, _root: Path) -> HostFacts:
        return four_cpus

    monkeypatch.setattr("nestlab.host.facts.read_host_facts", read)
    path = tmp_path / "course.yaml"
    path.write_text(COURSE)
    return path


def nestlab(*args: str) -> tuple[int, Any, str]:
    """Run the CLI against the test driver; (exit code, stdout as JSON if it is, stderr)."""
    return cli_json("--connect", "test:///l0", *args)


def test_two_seats_come_up_each_a_lab_of_its_own(
        l0: libvirt.virConnect, seat_l1s: dict[str, FakeLinuxL1], home: Path,
        course: Path) -> None:
    code, out, err = nestlab("up", "-f", str(course), "--json")
    assert code == 0, err
    assert out["seats_at_once"] == 2 and out["failed"] == 0
    assert [(s["seat"], s["lab"], s["outcome"]) for s in out["seats"]] == [
        (1, "course-s01", "up"), (2, "course-s02", "up")]
    assert [[p["guest"] for p in s["proofs"]] for s in out["seats"]] == [["prime1"], ["prime1"]]
    assert "course-s02 kvm1: ssh" in err  # progress names the seat

    assert inventory(l0) == {
        "domains": [S1, S2],
        "networks": ["nestlab-course-s01-lab", "nestlab-course-s02-lab"]}
    xml = {n: l0.networkLookupByName(n).XMLDesc(0) for n in
           ("nestlab-course-s01-lab", "nestlab-course-s02-lab")}
    assert "address='10.81.0.1'" in xml["nestlab-course-s01-lab"]
    assert "address='10.81.1.1'" in xml["nestlab-course-s02-lab"]
    for name in (S1, S2):
        assert seat_l1s[name].domain_state(name.replace("kvm1", "prime1")) == "running"
    keys = [(home / "labs" / lab / "keys" / "id_ed25519").read_bytes()
            for lab in ("course-s01", "course-s02")]
    assert keys[0] != keys[1]
    assert not (home / "labs" / "course").exists()  # the lab itself has no folder

    code, again, _ = nestlab("up", "-f", str(course), "--json", "-q")
    assert code == 0
    assert [s["counts"]["changed"] for s in again["seats"]] == [0, 0]


def test_a_failing_seat_does_not_stop_the_other_and_up_again_finishes_it(
        l0: libvirt.virConnect, seat_l1s: dict[str, FakeLinuxL1], home: Path,
        course: Path) -> None:
    seat_l1s[S2] = NeverAnswers("kvm1")
    code, out, _ = nestlab("up", "-f", str(course), "--json", "-q")
    assert code == 1
    assert out["failed"] == 1
    one, two = out["seats"]
    assert one["outcome"] == "up" and len(one["proofs"]) == 1
    assert two["outcome"] == "failed" and "kvm1: SSH: no answer" in two["error"]

    code, text, _ = nestlab("up", "-f", str(course), "-q")  # still failing: the table says so
    assert code == 1
    assert "1 of 2 seats up" in text and "again finishes the failed ones" in text

    code, out, _ = nestlab("status", "-f", str(course), "--json")
    assert code == 0
    rows = {r["lab"]: r for r in out["seats"]}
    assert rows["course-s01"]["state"] == "up"
    assert rows["course-s01"]["l1s"] == {"running": 1, "total": 1}
    assert rows["course-s01"]["last_up"]["outcome"] == "ok"
    assert rows["course-s02"]["state"] == "not running"  # its L1 does not answer
    assert rows["course-s02"]["l2s"] == {"running": 0, "total": 1}
    assert rows["course-s02"]["last_up"]["outcome"] == "failed"

    del seat_l1s[S2]  # the L1 answers now
    code, out, _ = nestlab("up", "-f", str(course), "--json", "-q")
    assert code == 0
    one, two = out["seats"]
    assert one["counts"]["changed"] == 0  # seat 1 was done: nothing of it is made again
    assert two["counts"]["changed"] > 0 and two["outcome"] == "up"
    code, out, _ = nestlab("status", "-f", str(course), "--json", "--cached")
    assert [r["state"] for r in out["seats"]] == ["up", "up"]


def test_seat_selects_one_seat_of_every_command(
        l0: libvirt.virConnect, seat_l1s: dict[str, FakeLinuxL1], home: Path,
        course: Path) -> None:
    assert nestlab("up", "-f", str(course), "-q")[0] == 0
    code, _, err = nestlab("exec", "-f", str(course), "kvm1", "--", "uname", "-a")
    assert code == 2
    assert "lab course has 2 seats (course-s01, course-s02)" in err and "--seat N" in err
    calls = len(seat_l1s[S2].calls)
    code, _, _ = nestlab("exec", "-f", str(course), "--seat", "2", "kvm1", "--", "true")
    assert seat_l1s[S2].calls[calls:] == ["true"]
    code, out, _ = nestlab("status", "--lab", "course", "--seat", "1", "--json")
    assert code == 0 and out["lab"] == "course-s01" and out["hosts"][0]["domain"] == S1
    code, _, err = nestlab("status", "-f", str(course), "--seat", "3")
    assert code == 2 and "lab course has 2 seats; there is no seat 3" in err
    code, out, _ = nestlab("status", "--lab", "course", "--json", "--cached")  # found here
    assert [r["lab"] for r in out["seats"]] == ["course-s01", "course-s02"]
    code, out, _ = nestlab("ssh-config", "--lab", "course", "--seat", "2")
    assert code == 0 and "course-s02" in out


def test_down_takes_every_seat_down_and_leaves_nothing(
        l0: libvirt.virConnect, seat_l1s: dict[str, FakeLinuxL1], home: Path,
        course: Path) -> None:
    before = inventory(l0)
    assert nestlab("up", "-f", str(course), "-q")[0] == 0
    code, out, _ = nestlab("down", "-f", str(course), "--seat", "2", "--json", "-q")
    assert code == 0 and out["removed_domains"] == [S2]
    code, out, err = nestlab("down", "-f", str(course), "--purge", "--json", "-q")
    assert code == 0, err
    assert [(s["lab"], s["error"]) for s in out["seats"]] == [("course-s01", None),
                                                               ("course-s02", None)]
    assert out["seats"][0]["result"]["removed_domains"] == [S1]
    assert out["seats"][1]["result"]["purged"] is True  # down already: only purged
    assert inventory(l0) == before
    assert list((home / "labs").iterdir()) == []


def test_seat_networks_over_a_network_on_the_host_are_refused_before_anything(
        l0: libvirt.virConnect, seat_l1s: dict[str, FakeLinuxL1], home: Path,
        course: Path) -> None:
    l0.networkDefineXML("<network><name>classroom-wifi</name><ip address='10.81.1.1' "
                        "netmask='255.255.255.0'/></network>")
    before = inventory(l0)
    code, _, err = nestlab("up", "-f", str(course))
    assert code == 2
    assert ("course-s02's network lab (10.81.1.0/24) overlaps classroom-wifi (10.81.1.0/24)"
            in err)
    assert inventory(l0) == before
    assert not (home / "labs").exists() or list((home / "labs").iterdir()) == []


def test_up_seats_overrides_the_file_and_a_lab_without_seats_is_unchanged(
        l0: libvirt.virConnect, seat_l1s: dict[str, FakeLinuxL1], home: Path,
        course: Path) -> None:
    course.write_text(COURSE.replace("seats: 2\n", ""))
    code, out, _ = nestlab("up", "-f", str(course), "--seats", "1", "--json", "-q")
    assert code == 0 and [s["lab"] for s in out["seats"]] == ["course-s01"]
    code, out, _ = nestlab("status", "-f", str(course), "--json", "--cached")
    assert [r["lab"] for r in out["seats"]] == ["course-s01"]  # found by its folder
    assert nestlab("down", "-f", str(course), "-q")[0] == 0
    code, out, _ = nestlab("up", "-f", str(course), "--json", "-q")  # no seats: as before
    assert code == 0 and out["lab"] == "course" and "seats" not in out
    assert inventory(l0)["domains"] == ["nestlab-course-kvm1"]


def test_ls_says_whose_seat_each_lab_is(
        l0: libvirt.virConnect, seat_l1s: dict[str, FakeLinuxL1], home: Path,
        course: Path) -> None:
    assert nestlab("up", "-f", str(course), "-q")[0] == 0
    code, out, _ = nestlab("ls", "--json")
    assert code == 0
    assert [(lab["name"], lab["state"], lab["seat_of"], lab["seat"]) for lab in out] == [
        ("course-s01", "up", "course", 1), ("course-s02", "up", "course", 2)]
    code, text, _ = nestlab("ls")
    assert "1 of course" in text and "2 of course" in text


def test_verify_checks_one_seat(
        l0: libvirt.virConnect, seat_l1s: dict[str, FakeLinuxL1], home: Path,
        course: Path, tmp_path: Path) -> None:
    assert nestlab("up", "-f", str(course), "-q")[0] == 0
    tests = tmp_path / "test_seat.py"
    tests.write_text("def test_its_l1(nestlab_lab):\n"
                     "    assert nestlab_lab.status()['lab'] == 'course-s02'\n")
    code, _, err = nestlab("verify", "-f", str(course), "--no-builtin", str(tests))
    assert code == 2 and "lab course has 2 seats: verify checks one" in err
    code, out, _ = nestlab("verify", "-f", str(course), "--seat", "2", "--no-builtin",
                           str(tests), "--json")
    assert code == 0, out
    assert out["lab"] == "course-s02" and out["counts"]["passed"] == 1


class Buggy(FakeLinuxL1):
    """nestlab's own bug while it reaches this L1 (a plain exception, not a NestlabError)."""

    def wait_until_reachable(self, timeout: float, waiting: Callable[[str], None] | None = None,
                             cancel: threading.Event | None = None) -> None:
        raise RuntimeError("a bug in reaching kvm1")


def test_a_bug_in_one_seat_is_reported_and_the_other_comes_up(
        l0: libvirt.virConnect, seat_l1s: dict[str, FakeLinuxL1], home: Path,
        course: Path) -> None:
    seat_l1s[S1] = Buggy("kvm1")
    code, out, _ = nestlab("up", "-f", str(course), "--json", "-q")
    assert code == 1
    one, two = out["seats"]
    assert one["outcome"] == "failed"
    assert one["error"] == "internal error: RuntimeError: a bug in reaching kvm1"
    assert "course-s01" in one["hint"] and "events.jsonl" in one["hint"]
    assert two["outcome"] == "up" and len(two["proofs"]) == 1
