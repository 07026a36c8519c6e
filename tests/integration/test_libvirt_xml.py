"""Every rendered XML passes libvirt's own schemas and defines in libvirt's test driver."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import libvirt
import pytest

from nestlab.plan import METADATA_NS
from tests.golden_cases import CASES, LAB_CASES, libvirt_xml, render_case

TEST_URI = f"test://{Path(__file__).with_name('testdriver.xml')}"

RENDERED = [
    (case, path, xml) for case in CASES for path, xml in libvirt_xml(render_case(case)).items()
]


@pytest.fixture(scope="module")
def validator() -> str:
    tool = shutil.which("virt-xml-validate")
    if tool is None:
        pytest.fail("virt-xml-validate is missing: install libvirt-clients (.ci/run does)")
    return tool


@pytest.mark.parametrize(("case", "path", "xml"), RENDERED,
                         ids=[f"{c}:{p}" for c, p, _ in RENDERED])
def test_validates_against_libvirt_schema(
    validator: str, tmp_path: Path, case: str, path: PurePosixPath, xml: str
) -> None:
    kind = "network" if "/networks/" in str(path) else "domain"
    target = tmp_path / path.name
    target.write_text(xml)
    result = subprocess.run([validator, str(target), kind], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


def libvirt_of(path: PurePosixPath) -> str:
    """Whose libvirt defines it: L0's (l0/...) or one L1's own (l1/NAME/...)."""
    return "/".join(path.parts[:2]) if path.parts[0] == "l1" else path.parts[0]


@pytest.mark.parametrize("case", CASES)
def test_defines_in_the_test_driver(case: str) -> None:
    artifacts = libvirt_xml(render_case(case))
    assert artifacts
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    connections: dict[str, libvirt.virConnect] = {}
    for path, xml in sorted(artifacts.items()):
        # Each L1 has a libvirt of its own (two L1s may both have a nestlab-nat).
        conn = connections.setdefault(libvirt_of(path), libvirt.open(TEST_URI))
        if "/networks/" in str(path):
            net = conn.networkDefineXML(xml)
            assert net.name() == path.stem
        else:
            dom = conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
            assert dom.name() == path.stem
            if case in LAB_CASES:  # the install domain is transient and belongs to no lab
                meta = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS)
                assert f'name="{LAB_CASES[case][0]}"' in meta
    for conn in connections.values():
        conn.close()
