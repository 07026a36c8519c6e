"""A course folder from `nestlab init` to grading, for real in a sandbox.

One lab boot for all of it (each costs minutes on these machines): the course's
own pytest run through nestlab's plugin brings the lab up (`--nestlab-keep`), runs
the example checks and one deliberately failing test and writes JUnit XML; then
the Makefile a teacher hands out: `make lab` (finds it up), `make verify`
(nestlab's built-in checks and the example checks), `make clean`, after which
nothing is left. The plugin taking a lab down at the end of a run (no
`--nestlab-keep`) is the same `down`, run by tests/integration/test_pytest_plugin.py
against the FAKE lab.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.junit import junit_cases
from tests.system.conftest import Nestlab

pytestmark = pytest.mark.system

LAB = "course"
NETNS = f"nestlab-{LAB}"
FAILING = '''\
def test_deliberately_failing(l1_host):
    assert l1_host.check_output("hostname") == "not-this-host", "deliberately failing"
'''


def assert_nothing_left(lab_dir: Path) -> None:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=True).stdout
    assert NETNS not in netns.split()
    leftovers = subprocess.run(["pgrep", "-af", str(lab_dir)], capture_output=True,
                               text=True, check=False).stdout
    assert leftovers == ""
    assert not (lab_dir / "hosts").exists() and not (lab_dir / "sandbox").exists()


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory, nestlab: Nestlab,
           nestlab_home: Path) -> Iterator[Path]:
    """`nestlab init course`; whatever the tests do, the lab is taken down at the end."""
    folder = tmp_path_factory.mktemp("teacher") / LAB
    nestlab.ok("init", str(folder))
    yield folder
    if (nestlab_home / "labs" / LAB).exists():
        nestlab("down", "--lab", LAB, "--purge", timeout=600)


def test_a_pytest_run_brings_the_lab_up_and_reports_every_test(
        course: Path, nestlab: Nestlab, images: None, nestlab_home: Path) -> None:
    extra = course / "tests" / "test_extra.py"
    extra.write_text(FAILING)
    try:
        run = subprocess.run([sys.executable, "-m", "pytest", "tests", "--nestlab",
                              "nestlab.yaml", "--nestlab-sandbox", "--nestlab-keep",
                              "--junitxml", "junit.xml",
                              "-p", "no:cacheprovider"], cwd=course, env=nestlab.env,
                             capture_output=True, text=True, timeout=1200)
    finally:
        extra.unlink()
    assert run.returncode == 1, run.stdout + run.stderr
    assert junit_cases(course / "junit.xml") == {
        "test_the_l1_can_run_virtual_machines[kvm1]": "passed",
        "test_the_l2_has_its_address_and_a_default_route[prime1@kvm1]": "passed",
        "test_deliberately_failing[kvm1]": "failure",
    }
    assert "deliberately failing" in (course / "junit.xml").read_text()


def test_the_makefile_verifies_the_lab_and_cleans_up_leaving_nothing(
        course: Path, nestlab: Nestlab, images: None, nestlab_home: Path) -> None:
    make = ["make", f"NESTLAB={sys.executable} -m nestlab"]

    def run(*target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*make, *target], cwd=course, env=nestlab.env,
                              capture_output=True, text=True, timeout=1200)

    lab = run("lab", "UP_FLAGS=--sandbox")
    assert lab.returncode == 0, lab.stdout + lab.stderr
    assert f"{sys.executable} -m nestlab up -f nestlab.yaml --sandbox" in lab.stdout
    assert "0 changed" in lab.stdout  # kept up by the pytest run
    verify = run("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    cases = junit_cases(course / "junit.xml")
    assert cases == {
        # nestlab's built-in checks
        "test_l1_runs_its_hypervisor[kvm1]": "passed",
        "test_l1_has_nesting_on[kvm1]": "passed",
        "test_l2_runs_in_its_l1[prime1@kvm1]": "passed",
        "test_l2_answers[prime1@kvm1]": "passed",
        # the course's own
        "test_the_l1_can_run_virtual_machines[kvm1]": "passed",
        "test_the_l2_has_its_address_and_a_default_route[prime1@kvm1]": "passed",
    }
    assert "6 passed" in verify.stdout
    clean = run("clean")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert not (nestlab_home / "labs" / LAB).exists()
    assert_nothing_left(nestlab_home / "labs" / LAB)
