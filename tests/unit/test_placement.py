"""Placement of seats on nodes: whole seats, by the room each node reports, kept once
placed, refused with every node's reason when nothing fits."""

from __future__ import annotations

import pytest

from nestlab.host.placement import NodeRoom, NoRoom, PlacementMoved, SeatNeed, place
from nestlab.lab.model import GiB


def seats(count: int, memory: int = 2 * GiB, vcpus: int = 1) -> list[SeatNeed]:
    return [SeatNeed(f"course-s{k:02d}", memory, vcpus) for k in range(1, count + 1)]


def test_seats_go_where_most_memory_is_left_so_two_equal_nodes_take_turns() -> None:
    nodes = [NodeRoom("a", 8 * GiB, 8), NodeRoom("b", 8 * GiB, 8)]
    assert place(seats(4), nodes, {}) == {
        "course-s01": "a", "course-s02": "b", "course-s03": "a", "course-s04": "b"}


def test_a_bigger_node_takes_more_seats_and_a_full_one_takes_none() -> None:
    nodes = [NodeRoom("small", 3 * GiB, 8), NodeRoom("big", 9 * GiB, 8)]
    placed = place(seats(5), nodes, {})
    assert sorted(placed.values()).count("big") == 4
    assert sorted(placed.values()).count("small") == 1


def test_weight_counts_memory_times_weight() -> None:
    nodes = [NodeRoom("a", 8 * GiB, 8), NodeRoom("b", 8 * GiB, 8, weight=3)]
    assert list(place(seats(2), nodes, {}).values()) == ["b", "b"]


def test_max_seats_and_cpus_limit_a_node() -> None:
    nodes = [NodeRoom("a", 64 * GiB, 64, max_seats=1), NodeRoom("b", 4 * GiB, 2)]
    assert list(place(seats(3, memory=GiB), nodes, {}).values()) == ["a", "b", "b"]
    with pytest.raises(NoRoom):
        place(seats(4, memory=GiB), nodes, {})  # b has 2 CPUs for 1-vCPU seats


def test_kept_seats_stay_even_where_another_node_has_more_room() -> None:
    nodes = [NodeRoom("a", 1 * GiB, 1, seats=1), NodeRoom("b", 64 * GiB, 64)]
    assert place(seats(2), nodes, {"course-s01": "a"}) == {
        "course-s01": "a", "course-s02": "b"}


def test_a_seat_kept_on_a_node_no_longer_named_is_refused_not_moved() -> None:
    with pytest.raises(PlacementMoved) as caught:
        place(seats(1), [NodeRoom("b", 64 * GiB, 64)], {"course-s01": "a"})
    assert "course-s01 runs on node a" in caught.value.message
    assert caught.value.exit_code == 2


def test_nothing_fits_names_each_node_and_why() -> None:
    nodes = [NodeRoom("a", 1 * GiB, 8), NodeRoom("b", 0, 0, answers=False,
                                                error="connection refused"),
             NodeRoom("c", 8 * GiB, 0)]
    with pytest.raises(NoRoom) as caught:
        place(seats(1), nodes, {})
    message = caught.value.message
    assert "no node can take course-s01 (2.0GiB, 1 vCPU)" in message
    assert "a: 1.0GiB of memory left" in message
    assert "b: does not answer (connection refused)" in message
    assert "c: 0 CPUs left" in message
    assert caught.value.exit_code == 1


def test_a_node_that_does_not_answer_gets_no_new_seat() -> None:
    nodes = [NodeRoom("a", 0, 0, answers=False), NodeRoom("b", 4 * GiB, 4)]
    assert list(place(seats(2), nodes, {}).values()) == ["b", "b"]


def test_a_few_mib_of_difference_do_not_decide_room_counts_in_whole_seats() -> None:
    """Free memory moves between `plan` and `up`: what plan shows must be what up does."""
    mib = 1024**2
    for noise in (0, 3 * mib, 40 * mib):
        nodes = [NodeRoom("a", 21 * GiB, 8), NodeRoom("b", 21 * GiB + noise, 8)]
        assert list(place(seats(2, memory=GiB), nodes, {}).values()) == ["a", "b"]


def test_counts_of_one_are_said_in_the_singular() -> None:
    nodes = [NodeRoom("a", 64 * GiB, 64, max_seats=1, seats=1), NodeRoom("b", 64 * GiB, 1)]
    with pytest.raises(NoRoom) as caught:
        place(seats(1, vcpus=2), nodes, {})
    assert caught.value.message == ("no node can take course-s01 (2.0GiB, 2 vCPUs): a: has "
                                    "its 1 seat (max_seats); b: 1 CPU left")
