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


@pytest.fixture(autouse=True)
def _no_real_state(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit and integration tests never touch the machine's own labs or images
    (/var/lib/nestlab, /var/cache/nestlab as root): NESTLAB_HOME and NESTLAB_CACHE point
    at empty folders of the test's own unless it sets its own (the `home` fixture). A test
    that forgets finds no image and fails, instead of writing into a user's lab folder.
    System and acceptance tests set both themselves and may use the machine's image cache."""
    if any(request.path.is_relative_to(Path(__file__).parent / kind)
           for kind in ("system", "acceptance")):
        return
    empty = tmp_path_factory.mktemp("not-the-machines")
    monkeypatch.setenv("NESTLAB_HOME", str(empty / "home"))
    monkeypatch.setenv("NESTLAB_CACHE", str(empty / "cache"))


def facts(name: str) -> HostFacts:
    """A recorded host, by fixture name (tests/fixtures/facts/NAME.json)."""
    return load_facts(FACTS / f"{name}.json")


def example(name: str) -> Lab:
    return load_lab(EXAMPLES / f"{name}.yaml")


def example_text(name: str) -> str:
    return (EXAMPLES / f"{name}.yaml").read_text()
