"""Shared helpers: paths to the project's examples and recorded host facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.host.facts import HostFacts, load_facts
from nestlab.lab.labfile import load_lab
from nestlab.lab.model import Lab

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
FACTS = Path(__file__).resolve().parent / "fixtures" / "facts"
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite tests/golden from the current templates instead of comparing.",
    )


def facts(name: str) -> HostFacts:
    """A recorded host, by fixture name (tests/fixtures/facts/NAME.json)."""
    return load_facts(FACTS / f"{name}.json")


def example(name: str) -> Lab:
    return load_lab(EXAMPLES / f"{name}.yaml")


def example_text(name: str) -> str:
    return (EXAMPLES / f"{name}.yaml").read_text()
