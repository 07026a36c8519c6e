"""``nestlab verify``: nestlab's built-in lab checks and the user's own test files, run
by pytest (through nestlab's plugin) against a lab that is up.

pytest's own terminal output is off; every test's outcome is collected here and
shown as one table (or JSON). JUnit XML is pytest's own (``--junitxml``, xunit2).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from nestlab.errors import InputError

CHECKS = "nestlab.checks"
JSON_FORMAT = 1


@dataclass(frozen=True)
class TestOutcome:
    id: str
    """pytest's node id, e.g. ``test_lab.py::test_l2_answers[prime1@kvm1]``."""
    outcome: str
    """passed, failed, error (in set-up or tear-down), or skipped."""
    seconds: float
    message: str
    """Why it failed or was skipped: the last line of pytest's report; empty when passed."""


@dataclass
class VerifyResult:
    lab: str
    exit_code: int
    seconds: float
    tests: list[TestOutcome] = field(default_factory=list)
    junit: str | None = None

    def count(self, outcome: str) -> int:
        return sum(1 for t in self.tests if t.outcome == outcome)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class _Collector:
    """A pytest plugin object: one outcome per test (set-up and tear-down errors count)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, TestOutcome] = {}
        self.problems: list[str] = []

    def pytest_runtest_logreport(self, report: Any) -> None:
        seen = self.outcomes.get(report.nodeid)
        if report.when == "call" or (report.outcome != "passed" and seen is None) or (
                report.when == "teardown" and report.failed):
            outcome = report.outcome
            if report.failed and report.when != "call":
                outcome = "error"
            seconds = report.duration + (seen.seconds if seen else 0.0)
            self.outcomes[report.nodeid] = TestOutcome(report.nodeid, outcome,
                                                       round(seconds, 2), _message(report))

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.problems.append(f"{report.nodeid or 'collection'}: {_message(report)}")


def _message(report: Any) -> str:
    if report.passed:
        return ""
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    text = str(report.longrepr or "").strip()
    lines = [line for line in text.splitlines() if line.startswith("E ")]
    line = (lines[0][1:].strip() if lines else text.splitlines()[-1] if text else "")
    return line[:300]


def checks_file() -> Path:
    """The built-in checks, shipped in the package (nestlab/checks/test_lab.py)."""
    return Path(str(resources.files(CHECKS) / "test_lab.py"))


def verify(lab_name: str, lab_file: Path, tests: list[Path], junit: Path | None,
           builtin: bool = True, seat: int | None = None) -> VerifyResult:
    """Run the checks against the lab that is up (``seat``: that seat of a lab with
    seats, named ``lab_name``); never brings it up or down."""
    import pytest

    for test in tests:
        if not test.exists():
            raise InputError(f"{test}: no such test file or folder")
    args = [*([str(checks_file())] if builtin else []), *map(str, tests),
            "--nestlab", str(lab_file), "--nestlab-reuse",
            "-p", "no:terminal", "-p", "no:cacheprovider", "--import-mode=importlib",
            # A user's folder may have its own pytest settings; the checks need none.
            "--rootdir", str(lab_file.resolve().parent), "-o", "addopts=",
            "-o", "junit_family=xunit2", "-o", f"junit_suite_name=nestlab-{lab_name}"]
    if seat is not None:
        args += ["--nestlab-seat", str(seat)]
    if junit is not None:
        args += ["--junitxml", str(junit)]
    collector = _Collector()
    started = time.monotonic()
    code = int(pytest.main(args, plugins=[collector]))
    result = VerifyResult(lab=lab_name, exit_code=code,
                          seconds=round(time.monotonic() - started, 1),
                          tests=list(collector.outcomes.values()),
                          junit=str(junit) if junit is not None else None)
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        raise InputError("no tests were collected", hint="Name test files test_*.py.")
    if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR) or \
            collector.problems:
        raise InputError("the tests could not be run: " + "; ".join(
            collector.problems or [f"pytest exit {code}"]))
    return result


def result_json(result: VerifyResult) -> dict[str, Any]:
    """`verify --json`: stable keys (``format`` changes when they do)."""
    return {"format": JSON_FORMAT, "lab": result.lab, "ok": result.ok,
            "exit_code": result.exit_code, "seconds": result.seconds,
            "counts": {o: result.count(o) for o in ("passed", "failed", "error", "skipped")},
            "junit": result.junit, "tests": [asdict(t) for t in result.tests]}
