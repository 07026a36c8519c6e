"""What the commands print that is worded from counts."""

from __future__ import annotations

from nestlab.commands.down import DownResult
from nestlab.report import down_summary


def test_down_says_what_it_removed_in_the_singular_and_the_plural() -> None:
    one = DownResult(removed_domains=["d"], removed_networks=["n"], removed_guests=["g"])
    assert down_summary(one) == "removed 1 domain, 1 L2 inside it, 1 network"
    two = DownResult(removed_domains=["d", "e"], removed_networks=[], removed_guests=["g", "h"])
    assert down_summary(two) == "removed 2 domains, 2 L2s inside them, 0 networks"
