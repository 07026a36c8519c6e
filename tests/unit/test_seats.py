"""Seats: a lab expanded into one lab per seat, with names and CIDRs of their own."""

from __future__ import annotations

import textwrap

import pytest

from nestlab.errors import LabFileError
from nestlab.lab.labfile import parse_lab
from nestlab.lab.seats import seat_labs
from nestlab.state.paths import seat_lab_name

COURSE = textwrap.dedent("""\
    lab: course
    networks:
      - name: lab
        cidr: 10.77.0.0/24
      - name: back
        mode: isolated
        cidr: 10.90.0.0/28
    hosts:
      - name: kvm1
        os: debian-12
        memory: 1GiB
        networks: [lab, back]
        guests: [{name: prime1}]
""")


def lab_with(extra: str = "", text: str = COURSE) -> str:
    return text + extra


def test_seat_names_leave_room_for_two_digits() -> None:
    assert seat_lab_name("course", 1) == "course-s01"
    assert seat_lab_name("course", 40) == "course-s40"


def test_each_seat_is_the_lab_under_its_own_name_with_its_networks_moved_up() -> None:
    lab = parse_lab(lab_with("seats: 3\n"))
    seats = seat_labs(lab)
    assert [s.name for s in seats] == ["course-s01", "course-s02", "course-s03"]
    assert [[str(n.cidr) for n in s.networks] for s in seats] == [
        ["10.77.0.0/24", "10.90.0.0/28"],
        ["10.77.1.0/24", "10.90.0.16/28"],
        ["10.77.2.0/24", "10.90.0.32/28"],
    ]
    for seat in seats:
        assert seat.seats is None
        assert seat.hosts == lab.hosts  # same L1s and L2s, L2 networks inside them unmoved


def test_a_lab_without_seats_is_itself() -> None:
    lab = parse_lab(COURSE)
    assert lab.seats is None
    assert seat_labs(lab) == [lab]


def test_up_seats_overrides_the_lab_file() -> None:
    lab = parse_lab(lab_with("seats: 3\n"))
    assert [s.name for s in seat_labs(lab, 2)] == ["course-s01", "course-s02"]
    assert [s.name for s in seat_labs(parse_lab(COURSE), 1)] == ["course-s01"]


@pytest.mark.parametrize("value", ["0", "41", "'3'", "yes", "2.0"])
def test_seats_must_be_a_count_from_1_to_40(value: str) -> None:
    with pytest.raises(LabFileError, match=r"seats"):
        parse_lab(lab_with(f"seats: {value}\n"))


def test_a_long_lab_name_leaves_no_room_for_seats() -> None:
    text = lab_with("seats: 2\n").replace("lab: course", "lab: abcdefghijklmnopq")  # 17
    with pytest.raises(LabFileError, match=r"lab: 'abcdefghijklmnopq' is too long for a lab "
                                           r"with seats: at most 16 characters"):
        parse_lab(text)
    parse_lab(text.replace("abcdefghijklmnopq", "abcdefghijklmnop"))  # 16 fits


def test_seats_that_overlap_another_network_are_refused() -> None:
    text = lab_with("seats: 3\n").replace("10.90.0.0/28", "10.77.2.0/24")
    with pytest.raises(LabFileError) as caught:
        parse_lab(text)
    assert ("networks[1].cidr: seat 1's copy of network 'back' (10.77.2.0/24) overlaps "
            "seat 3's copy of 'lab' (10.77.2.0/24)") in caught.value.message
    parse_lab(text.replace("seats: 3", "seats: 2"))  # two seats end below it


def test_seats_that_leave_the_private_range_or_the_address_space_are_refused() -> None:
    private = lab_with("seats: 2\n").replace("10.77.0.0/24", "10.255.255.0/24")
    with pytest.raises(LabFileError, match=r"networks\[0\].cidr: 2 seats need 2 blocks of "
                                           r"/24 from 10.255.255.0/24, up to 11.0.0.0/24, "
                                           r"which leaves the private range 10.0.0.0/8"):
        parse_lab(private)
    special = lab_with("seats: 2\n").replace("10.77.0.0/24", "223.255.255.0/24")
    with pytest.raises(LabFileError, match=r"reaches multicast"):
        parse_lab(special)


def test_the_address_space_ends() -> None:
    lab = parse_lab(COURSE)
    top = lab.model_copy(update={"networks": (lab.networks[0].model_copy(
        update={"cidr": __import__("ipaddress").IPv4Network("255.255.255.0/24")}),
        lab.networks[1])})
    with pytest.raises(LabFileError, match=r"past the end of the address space"):
        seat_labs(top, 2)


def test_a_seat_network_over_an_l1s_l2_network_is_refused() -> None:
    text = lab_with("seats: 3\n").replace("10.77.0.0/24", "192.168.98.0/24")
    with pytest.raises(LabFileError, match=r"hosts\[0\].guest_network.cidr: 192.168.100.0/24 "
                                           r"overlaps 192.168.100.0/24, seat 3's copy of L1 "
                                           r"network 'lab'"):
        parse_lab(text)


def test_up_seats_is_checked_like_the_file() -> None:
    lab = parse_lab(COURSE.replace("10.90.0.0/28", "10.77.1.0/24"))
    with pytest.raises(LabFileError, match=r"overlaps"):
        seat_labs(lab, 2, "course.yaml")


def test_many_seats_of_many_networks_are_checked_quickly() -> None:
    nets = "".join(f"  - name: n{i}\n    cidr: 10.{i}.0.0/24\n" for i in range(64))
    text = (f"lab: big\nseats: 40\nnetworks:\n{nets}hosts:\n  - name: kvm1\n"
            "    os: debian-12\n    networks: [n0]\n")
    assert len(seat_labs(parse_lab(text))) == 40
