"""nestlab/programs.py is the one list of external programs: the code runs nothing that
is not in it, and the Debian checker built on it flags a package only a Recommends brings."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest

from nestlab import programs as programs_module
from nestlab import sandbox
from nestlab.build import images
from nestlab.build.images import ImageBuildError
from nestlab.programs import PROGRAMS, Need, RunBy, install_command, program, programs_for
from nestlab.sandbox import SandboxError
from tests.conftest import REPO
from tests.debian import Unmet, closure, makefile_debs, parse_apt_depends, unmet

# What `apt-cache depends --recurse --no-recommends ...` prints, cut down: libvirt-daemon
# Recommends libxml2-utils, so it is not there at all.
APT_DEPENDS_EXCERPT = """\
libvirt-clients
  Depends: libvirt0
  Depends: libxml2
libvirt-daemon-system
  Depends: adduser
 |Depends: iptables
  Depends: firewalld
  Depends: libvirt-daemon
 |Depends: debconf
  Depends: <debconf-2.0>
    cdebconf
    debconf
libvirt-daemon
  Depends: libvirt0
  PreDepends: <awk>
    mawk
    original-awk
libvirt0
  Depends: libxml2
  Depends: <libnl-provider>
    libnl-3-200
libxml2
adduser
  Depends: passwd
iptables
  Depends: libxtables12
firewalld
  Depends: python3-nftables
libvirt-clients
  Depends: libvirt0
  Depends: libxml2
"""
ESSENTIAL = {"coreutils", "dpkg"}


def test_a_package_that_only_a_recommends_brings_is_flagged() -> None:
    graph = parse_apt_depends(APT_DEPENDS_EXCERPT)
    old = ["libvirt-daemon-system", "libvirt-clients"]
    assert unmet({"xmllint": "libxml2-utils", "virsh": "libvirt-clients"}, old, graph,
                 ESSENTIAL) == [Unmet("xmllint", "libxml2-utils")]
    assert unmet({"xmllint": "libxml2-utils"}, [*old, "libxml2-utils"], graph, ESSENTIAL) == []


def test_the_closure_takes_apts_first_alternative_and_certain_providers() -> None:
    graph = parse_apt_depends(APT_DEPENDS_EXCERPT)
    have = closure(["libvirt-daemon-system"], graph, ESSENTIAL)
    assert {"adduser", "passwd", "iptables", "libxtables12", "libvirt-daemon", "libvirt0",
            "libxml2", "debconf"} <= have
    assert "firewalld" not in have  # the second alternative of iptables | firewalld
    assert "python3-nftables" not in have
    assert "libnl-3-200" in have  # a virtual package with one provider
    assert not {"mawk", "original-awk"} & have  # several providers: apt's pick is not certain
    assert "cdebconf" not in have


def test_an_alternative_that_is_essential_satisfies_the_group() -> None:
    graph = parse_apt_depends("a\n |Depends: b\n  Depends: dpkg\n")
    assert closure(["a"], graph, ESSENTIAL) == {"a", *ESSENTIAL}


def test_a_recommends_line_is_refused_not_counted() -> None:
    with pytest.raises(ValueError, match="Recommends"):
        parse_apt_depends("a\n  Recommends: libxml2-utils\n")


def test_makefile_debs_joins_continuation_lines(tmp_path: Path) -> None:
    makefile = tmp_path / "Makefile"
    makefile.write_text("X := 1\nDEBS := a b \\\n        c-d \\\n  e\n\nall:\n\techo $(DEBS)\n")
    assert makefile_debs(makefile) == ["a", "b", "c-d", "e"]
    assert "libxml2-utils" in makefile_debs(REPO / "Makefile")


_SUBPROCESS = {"run", "Popen", "call", "check_call", "check_output"}
_WRAPPERS = {"_run", "_exec_tool"}  # images._run(step, argv, ...), cli._exec_tool(argv, pkg)


def programs_run_in(folder: Path) -> dict[str, list[str]]:
    """Program name -> where, for every literal argv or which() in the folder's code.

    Commands sent to a guest (``transport.run([...])``) are not calls of these and are
    not L0 programs.
    """
    found: dict[str, list[str]] = {}
    for file in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            where = f"{file.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
            for name in _literal_programs(node):
                found.setdefault(name, []).append(where)
    return found


def _literal_programs(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Assign) and any(
        isinstance(t, ast.Name) and "argv" in t.id.lower() for t in node.targets
    ):
        return [n for n in [_argv0(node.value)] if n]
    if not isinstance(node, ast.Call):
        return []
    func = node.func
    module = func.value.id if isinstance(func, ast.Attribute) and isinstance(
        func.value, ast.Name) else None
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if (module, name) == ("shutil", "which") and node.args:
        first = node.args[0]
        return [first.value] if isinstance(first, ast.Constant) and isinstance(
            first.value, str) else []
    if (module == "subprocess" and name in _SUBPROCESS) or (
        module == "os" and name.startswith("exec")) or (module is None and name in _WRAPPERS):
        return [n for n in (_argv0(arg) for arg in node.args) if n]
    return []


def _argv0(node: ast.AST) -> str | None:
    if isinstance(node, ast.List | ast.Tuple) and node.elts:
        first = node.elts[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def test_every_program_the_code_runs_is_listed() -> None:
    listed = {p.name for p in PROGRAMS}
    in_nestlab = programs_run_in(REPO / "nestlab")
    in_tests = programs_run_in(REPO / "tests")
    # The scan itself finds what is known to be there (or it would pass on nothing).
    assert {"qemu-img", "ip", "mount", "virtlogd", "libvirtd", "mmdebstrap", "mkfs.ext4",
            "ssh", "virsh"} <= set(in_nestlab)
    assert {"virt-xml-validate", "blkid", "cpio", "pgrep", "qemu-system-x86_64",
            "ip"} <= set(in_tests)
    unlisted = {name: where for name, where in {**in_tests, **in_nestlab}.items()
                if name not in listed}
    assert unlisted == {}, "add them to nestlab/programs.py with their Debian package"


def test_every_program_listed_as_run_by_nestlab_is_run_by_it() -> None:
    in_nestlab = set(programs_run_in(REPO / "nestlab"))
    stale = [p.name for p in PROGRAMS if p.run_by is RunBy.NESTLAB and p.name not in in_nestlab]
    assert stale == []


def test_the_cli_names_the_listed_package_when_a_program_it_execs_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from nestlab import cli, programs
    from nestlab.errors import NestlabError

    monkeypatch.setattr(programs, "locate", lambda _name: None)
    for name in ("ssh", "virsh"):
        with pytest.raises(NestlabError, match=f"{name} is not installed") as info:
            cli._exec_tool([name, "anything"])
        assert info.value.hint == f"sudo apt-get install {program(name).package}"


def test_install_command_names_each_package_once() -> None:
    assert install_command(programs_for(Need.SANDBOX)) == (
        "sudo apt-get install iproute2 libvirt-daemon mount")
    assert program("xmllint").package == "libxml2-utils"
    assert not program("xmllint").runtime and program("dnsmasq").runtime


@pytest.fixture
def hidden(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Programs to treat as not installed (the rest are looked up for real)."""
    names: set[str] = set()
    real = programs_module.locate
    monkeypatch.setattr(programs_module, "locate",
                        lambda name: None if name in names else real(name))
    return names


def test_image_build_names_the_missing_programs_and_their_packages(hidden: set[str]) -> None:
    hidden.update({"mkfs.ext4", "mount"})
    with pytest.raises(ImageBuildError) as raised:
        images._require_tools()
    assert raised.value.message == "building images needs: mount, mkfs.ext4"
    assert raised.value.hint == "sudo apt-get install e2fsprogs mount"


def test_the_sandbox_names_the_missing_program_and_its_package(
    hidden: set[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the check let the sandbox start: {args}")

    # Pretend root to reach the check; nothing past it may run (no namespace, no libvirtd).
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(subprocess, "run", must_not_run)
    monkeypatch.setattr(subprocess, "Popen", must_not_run)
    monkeypatch.setattr(sandbox, "stop", must_not_run)
    hidden.add("virtlogd")
    with pytest.raises(SandboxError) as raised:
        sandbox.start(sandbox.Sandbox("lab", tmp_path / "sandbox"))
    assert raised.value.message == "--sandbox needs virtlogd"
    assert raised.value.hint == "sudo apt-get install libvirt-daemon"
    assert not (tmp_path / "sandbox").exists()  # refused before anything was made
