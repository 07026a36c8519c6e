"""nestlab's pytest plugin and `nestlab verify`, run by pytest inside this test: L0 is
libvirt's test driver and the L1 and L2 are FAKE sessions (tests/fakes/linux.py), so
the lab's whole life in a run (up, tests, down) is seen here; the system tests run
the same against real guests, with the built-in checks."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import libvirt
import pytest
from click.testing import CliRunner

from nestlab import testing
from nestlab.cli import main
from tests.fakes.linux import FakeLinuxL1
from tests.integration.conftest import LAB_FILE, bring_up, host_facts, inventory
from tests.junit import junit_cases

USER_TESTS = textwrap.dedent("""\
    def test_the_l2_was_proven(nestlab_lab):
        assert [p["guest"] for p in nestlab_lab.proofs] == ["prime1"]

    def test_once_per_l1(l1, nestlab_lab):
        assert l1.name == "kvm1" and not l1.is_l2

    def test_once_per_l2(l2, nestlab_lab):
        assert nestlab_lab.exec(l2.name, "uname", "-r").stdout.strip() == "6.1.0-fake-amd64"

    def test_l2_host_is_testinfra(l2_host):
        assert l2_host.check_output("hostname") == "prime1"

    def test_deliberately_failing(nestlab_lab):
        assert nestlab_lab.name == "not-this-lab", "deliberately failing"
""")


# Each inner run imports its test files afresh (they share names across tests), and
# nestlab is imported already (by this run), which pytest would warn about.
INNER = ("-p", "no:cacheprovider", "-p", "no:terminal", "--import-mode=importlib",
         "-o", "addopts=",
         "-W", "ignore::pytest.PytestAssertRewriteWarning")


@pytest.fixture
def user_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path) -> Path:
    folder = tmp_path / "course"
    folder.mkdir()
    (folder / "test_course.py").write_text(USER_TESTS)
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "test:///l0")  # opened as the `l0` fixture's
    monkeypatch.setattr(testing, "_read_facts", host_facts)
    return folder


def run_pytest(folder: Path, *options: str) -> int:
    """pytest in this process, as a user would run it in their course folder."""
    return int(pytest.main([str(folder), *INNER, "--junitxml",
                            str(folder / "junit.xml"), "--nestlab", str(LAB_FILE), *options]))


def test_a_run_brings_the_lab_up_and_down_and_reports_every_test(
        user_tests: Path, guests: dict[str, FakeLinuxL1], home: Path,
        l0: libvirt.virConnect) -> None:
    assert run_pytest(user_tests) == 1  # one test fails
    assert junit_cases(user_tests / "junit.xml") == {
        "test_the_l2_was_proven": "passed",
        "test_once_per_l1[kvm1]": "passed",
        "test_once_per_l2[prime1@kvm1]": "passed",
        "test_l2_host_is_testinfra[prime1@kvm1]": "passed",
        "test_deliberately_failing": "failure",
    }
    assert inventory(l0) == {"domains": [], "networks": []}  # taken down after the run


def test_keep_leaves_the_lab_up(user_tests: Path, guests: dict[str, FakeLinuxL1],
                                l0: libvirt.virConnect) -> None:
    assert run_pytest(user_tests, "--nestlab-keep") == 1
    assert inventory(l0)["domains"] == ["nestlab-linux-nested-kvm1"]


def test_reuse_attaches_to_a_lab_that_is_up_and_leaves_it_up(
        user_tests: Path, guests: dict[str, FakeLinuxL1], home: Path,
        l0: libvirt.virConnect) -> None:
    bring_up(LAB_FILE, home)
    calls = len(guests["kvm1"].calls)
    assert run_pytest(user_tests, "--nestlab-reuse") == 1
    cases = junit_cases(user_tests / "junit.xml")
    # Attached, not brought up: no proofs of its own; nothing in the L1 was changed.
    assert cases["test_the_l2_was_proven"] == "failure"
    assert cases["test_once_per_l2[prime1@kvm1]"] == "passed"
    assert not any(c.startswith(("virsh define", "virsh start", "virsh destroy"))
                   for c in guests["kvm1"].calls[calls:])
    assert inventory(l0)["domains"] == ["nestlab-linux-nested-kvm1"]


def test_reuse_of_a_lab_that_is_not_up_fails_every_test_with_the_reason(
        user_tests: Path, guests: dict[str, FakeLinuxL1], home: Path,
        l0: libvirt.virConnect) -> None:
    bring_up(LAB_FILE, home)
    l0.lookupByName("nestlab-linux-nested-kvm1").destroy()
    assert run_pytest(user_tests, "--nestlab-reuse") == 1
    text = (user_tests / "junit.xml").read_text()
    assert "lab linux-nested is not up: kvm1 (shut off)" in text
    assert inventory(l0)["domains"] == ["nestlab-linux-nested-kvm1"]  # left as it was


def test_tests_per_guest_without_a_lab_say_so_and_run_nothing(user_tests: Path) -> None:
    junit = user_tests / "junit.xml"
    code = int(pytest.main([str(user_tests), *INNER, "--junitxml", str(junit)]))
    assert code == pytest.ExitCode.INTERRUPTED  # a collection error: nothing ran
    assert "test_once_per_l1 (one test per L1) needs a lab: pass --nestlab FILE" in \
        junit.read_text()


def test_verify_runs_user_tests_on_the_lab_that_is_up(
        user_tests: Path, guests: dict[str, FakeLinuxL1], home: Path,
        l0: libvirt.virConnect) -> None:
    bring_up(LAB_FILE, home)
    junit = user_tests / "verify.xml"
    result = CliRunner().invoke(main, ["verify", "-f", str(LAB_FILE), "--no-builtin",
                                       str(user_tests / "test_course.py"), "--junit",
                                       str(junit), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["format"] == 1 and report["ok"] is False
    assert report["counts"] == {"passed": 3, "failed": 2, "error": 0, "skipped": 0}
    failed = {t["id"].split("::")[-1]: t["message"] for t in report["tests"]
              if t["outcome"] == "failed"}
    assert failed["test_deliberately_failing"].startswith("AssertionError: deliberately failing")
    assert "test_the_l2_was_proven" in failed  # verify attaches: no proofs of its own
    assert set(junit_cases(junit)) == {t["id"].split("::")[-1] for t in report["tests"]}
    assert inventory(l0)["domains"] == ["nestlab-linux-nested-kvm1"]  # verify never takes it down


def test_verify_of_a_missing_test_file_is_bad_input(home: Path) -> None:
    result = CliRunner().invoke(main, ["verify", "-f", str(LAB_FILE), "nosuch.py"])
    assert result.exit_code == 2
    assert "nosuch.py: no such test file or folder" in result.stderr
