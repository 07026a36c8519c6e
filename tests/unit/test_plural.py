"""Counts in messages: one vCPU, two vCPUs."""

from __future__ import annotations

from nestlab.plural import counted


def test_one_is_singular_and_every_other_count_plural() -> None:
    assert counted(1, "vCPU") == "1 vCPU"
    assert [counted(n, "seat") for n in (0, 2, 40)] == ["0 seats", "2 seats", "40 seats"]
    assert counted(1, "L1 host") == "1 L1 host"
    assert counted(3, "L2") == "3 L2s"
