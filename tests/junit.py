"""JUnit XML as tests read it back: test name -> outcome."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path


def junit_cases(path: Path) -> dict[str, str]:
    """test name -> passed, failure, error or skipped, from a JUnit XML file."""
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = next((child.tag for child in case
                        if child.tag in ("failure", "error", "skipped")), "passed")
        cases[case.get("name", "")] = outcome
    return cases
