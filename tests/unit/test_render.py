"""Rendering: golden files (``pytest --update-golden`` rewrites them), strictness, escaping."""

from __future__ import annotations

import ipaddress
import shutil
import stat
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

import jinja2
import pytest

from nestlab.plan import METADATA_NS, NetworkPlan
from nestlab.render import OutputNotWritable, render_template, write_artifacts
from tests.conftest import GOLDEN
from tests.golden_cases import (
    CASES,
    golden_differences,
    libvirt_xml,
    render_case,
    rewrite_golden,
)


@pytest.mark.parametrize("case", CASES)
def test_rendered_files_match_golden(case: str, request: pytest.FixtureRequest) -> None:
    artifacts = render_case(case)
    golden = GOLDEN / case
    if request.config.getoption("--update-golden"):
        rewrite_golden(golden, artifacts)
        pytest.skip(f"{case}: golden files rewritten")
    differences = golden_differences(golden, artifacts)
    assert not differences, (
        f"rendering {case} differs from tests/golden/{case} (`make golden` rewrites it; "
        "review its diff):\n" + "\n".join(differences))


def test_every_golden_folder_is_a_case(request: pytest.FixtureRequest) -> None:
    stale = sorted(p for p in GOLDEN.iterdir() if p.name not in CASES)
    if request.config.getoption("--update-golden"):
        for folder in stale:
            shutil.rmtree(folder)
        pytest.skip(f"golden folders of cases that no longer exist removed: {stale}")
    assert not stale, "golden folders of no case (`make golden` removes them)"


def test_a_changed_golden_file_shows_as_a_unified_diff(tmp_path: Path) -> None:
    (tmp_path / "l0").mkdir()
    (tmp_path / "l0" / "a.xml").write_text("<a>\n  <b/>\n</a>\n")
    (tmp_path / "l0" / "gone.xml").write_text("<gone/>\n")
    artifacts = {PurePosixPath("l0/a.xml"): "<a>\n  <c/>\n</a>\n",
                 PurePosixPath("l0/new.xml"): "<new/>\n"}
    changed, gone, new = golden_differences(tmp_path, artifacts)
    assert changed.splitlines() == ["--- golden/l0/a.xml", "+++ rendered/l0/a.xml",
                                    "@@ -1,3 +1,3 @@", " <a>", "-  <b/>", "+  <c/>", " </a>"]
    assert gone == "l0/gone.xml: a golden file that is no longer rendered"
    assert new == "l0/new.xml: rendered, but there is no golden file for it"
    assert golden_differences(tmp_path / "l0", {PurePosixPath("a.xml"): "<a>\n  <b/>\n</a>\n",
                                                PurePosixPath("gone.xml"): "<gone/>\n"}) == []


def test_rewriting_golden_files_drops_stale_ones(tmp_path: Path) -> None:
    golden = tmp_path / "case"
    (golden / "l1" / "old").mkdir(parents=True)
    (golden / "l1" / "old" / "stale.xml").write_text("<stale/>")
    artifacts = render_case("linux-nested-tcg")
    rewrite_golden(golden, artifacts)
    assert golden_differences(golden, artifacts) == []
    assert not (golden / "l1" / "old").exists()


@pytest.mark.parametrize("case", CASES)
def test_every_artifact_is_checked_as_what_it_is(case: str) -> None:
    """libvirt XML is validated by the integration tests, scripts parsed by
    test_powershell, the answer medium's file read by test_answerfile."""
    artifacts = render_case(case)
    others = set(artifacts) - set(libvirt_xml(artifacts))
    assert all(p.suffix == ".ps1" or p.as_posix().endswith("/answer-medium/autounattend.xml")
               for p in others), sorted(map(str, others))


def test_linux_tcg_domain_is_emulated_with_svm() -> None:
    artifacts = render_case("linux-nested-tcg")
    xml = next(v for k, v in artifacts.items() if str(k).startswith("l0/domains/"))
    root = ET.fromstring(xml)
    assert root.get("type") == "qemu"
    assert root.findtext("cpu/model") == "EPYC"
    assert root.find("cpu/feature[@name='svm']").get("policy") == "require"  # type: ignore[union-attr]
    assert root.find("features/acpi") is not None  # else poweroff leaves it "running"
    meta = root.find(f"metadata/{{{METADATA_NS}}}lab")
    assert meta is not None and meta.get("name") == "linux-nested" and meta.get("role") == "l1"


def test_an_l2s_console_log_begins_anew_at_each_start_and_an_l1s_does_not() -> None:
    """The watch that hears a guest announce itself (provision/linux.py,
    _AWAIT_ANNOUNCEMENT) takes an L2's log for its current boot: the L2's quiet kernel
    leaves nothing in it that would tell an earlier boot's announcement from this one's.
    An L1's log keeps its earlier boots: an L1 restored from its memory (reset, snapshot,
    baseline) is a new QEMU that does not boot, and its last announcement must still be
    there; its kernel's banner tells its boots apart."""
    artifacts = render_case("linux-nested-tcg")
    appends = {str(k).split("/")[0]: ET.fromstring(v).findall("devices/serial/log")[0].get(
        "append") for k, v in artifacts.items() if "/domains/" in str(k)}
    assert appends == {"l1": "off", "l0": "on"}  # the L2's in the L1; the L1's on L0


def test_windows_intel_domain_preset() -> None:
    xml = next(v for k, v in render_case("windows-hyperv-kvm-intel").items()
               if str(k).startswith("l0/domains/"))
    root = ET.fromstring(xml)
    assert root.get("type") == "kvm"
    assert root.find("os").get("firmware") == "efi"  # type: ignore[union-attr]
    assert root.find("cpu").get("mode") == "host-passthrough"  # type: ignore[union-attr]
    policies = {f.get("name"): f.get("policy") for f in root.findall("cpu/feature")}
    assert policies == {"vmx": "require", "hle": "disable", "rtm": "disable"}
    hyperv = {e.tag for e in root.find("features/hyperv")}  # type: ignore[union-attr]
    assert {"evmcs", "stimer", "vapic", "synic"} <= hyperv
    assert root.find("features/hyperv/stimer/direct").get("state") == "on"  # type: ignore[union-attr]
    assert root.find("clock/timer[@name='hypervclock']").get("present") == "yes"  # type: ignore[union-attr]
    assert root.find("devices/memballoon").get("model") == "none"  # type: ignore[union-attr]
    assert {m.get("type") for m in root.findall("devices/interface/model")} == {"e1000e"}
    assert {t.get("bus") for t in root.findall("devices/disk/target")} == {"sata"}


@pytest.mark.parametrize(("case", "product"), [
    ("windows-hyperv-kvm-intel", "Windows Server 2016"),
    ("windows-server-2019-kvm-amd", "Windows Server 2019"),
    ("windows-server-2022-kvm-intel", "Windows Server 2022")])
def test_a_windows_domain_names_its_version(case: str, product: str) -> None:
    xml = next(v for k, v in render_case(case).items() if str(k).startswith("l0/domains/"))
    assert ET.fromstring(xml).findtext("title", "").endswith(f"({product}, Hyper-V)")


def test_windows_amd_domain_has_no_evmcs() -> None:
    xml = next(v for k, v in render_case("windows-hyperv-kvm-amd").items()
               if str(k).startswith("l0/domains/"))
    root = ET.fromstring(xml)
    assert root.find("features/hyperv/evmcs") is None
    assert {f.get("name") for f in root.findall("cpu/feature")} == {"svm"}


def test_values_are_xml_escaped() -> None:
    net = NetworkPlan(
        name="x'><evil/>", lab_network="a&b", mode="isolated", bridge="nl0",
        gateway=ipaddress.IPv4Address("10.1.0.1"), netmask=ipaddress.IPv4Address("255.255.0.0"),
        dhcp_range=None, reservations=(),
    )
    xml = render_template("network.xml.j2", lab="lab<1>", net=net)
    root = ET.fromstring(xml)
    assert root.findtext("name") == "x'><evil/>"
    assert root.find("domain").get("name") == "a&b.lab<1>.nestlab"  # type: ignore[union-attr]
    assert root.find("forward") is None


def test_missing_values_are_errors_not_blanks() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render_template("network.xml.j2", lab="lab")


def test_write_artifacts(tmp_path: Path) -> None:
    artifacts = render_case("linux-nested-tcg")
    written = write_artifacts(artifacts, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(
        str(k) for k in artifacts)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                  if p.is_file()) == sorted(str(k) for k in artifacts)  # no temporary left
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_symlink_at_the_old_temporary_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    artifacts = render_case("linux-nested-tcg")
    for relative in artifacts:
        planted = out / relative.parent / f"{relative.name}.tmp"  # the name it used to write
        planted.parent.mkdir(parents=True, exist_ok=True)
        planted.symlink_to(victim)
    write_artifacts(artifacts, out)
    assert victim.read_text() == "precious"
    for relative, text in artifacts.items():
        assert not (out / relative).is_symlink()
        assert (out / relative).read_text() == text


def test_a_symlink_at_a_target_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    artifacts = render_case("linux-nested-tcg")
    relative = next(iter(artifacts))
    (tmp_path / "out" / relative.parent).mkdir(parents=True)
    (tmp_path / "out" / relative).symlink_to(victim)
    write_artifacts(artifacts, tmp_path / "out")
    assert victim.read_text() == "precious"
    assert (tmp_path / "out" / relative).read_text() == artifacts[relative]


def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    with pytest.raises(OutputNotWritable, match="out: exists and is not a folder"):
        write_artifacts(render_case("linux-nested-tcg"), tmp_path / "out")


def test_a_symlinked_folder_below_out_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "l1").symlink_to(elsewhere)
    with pytest.raises(OutputNotWritable, match="out/l1: is a symbolic link or a file"):
        write_artifacts(render_case("linux-nested-tcg"), out)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(("case", "evmcs", "cpu"), [
    ("windows-install-kvm-intel", True, {"vmx": "require", "hle": "disable", "rtm": "disable"}),
    ("windows-install-kvm-amd", False, {"svm": "require"}),
])
def test_windows_install_domain(case: str, evmcs: bool, cpu: dict[str, str]) -> None:
    [xml] = render_case(case).values()
    root = ET.fromstring(xml)
    assert [b.get("dev") for b in root.findall("os/boot")] == ["cdrom", "hd"]
    sources = [d.find("source").get("file") for d in root.findall("devices/disk")]  # type: ignore[union-attr]
    assert sources[1:] == ["/srv/iso/WindowsServer2016.iso",
                           "/var/cache/nestlab/images/windows-server-2016/build/answer.iso"]
    assert root.find("devices/interface") is None  # no network while installing
    assert (root.find("features/hyperv/evmcs") is not None) is evmcs
    assert {f.get("name"): f.get("policy") for f in root.findall("cpu/feature")} == cpu
