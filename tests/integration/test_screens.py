"""Screenshots through libvirt's own API (virDomainScreenshot and a virStream), against
libvirt's test driver, which answers with a PNG of its own."""

from __future__ import annotations

import threading
from pathlib import Path

import libvirt

from nestlab.virt.screens import ScreenRecorder, capture, screenshots_every
from tests.fakes.linux import TESTDRIVER

DOMAIN_XML = """<domain type='test'><name>screen</name><memory>65536</memory>
<os><type>hvm</type></os></domain>"""


def running_domain() -> tuple[libvirt.virConnect, libvirt.virDomain]:
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(f"test://{TESTDRIVER}")
    return conn, conn.createXML(DOMAIN_XML, 0)


def test_capture_reads_the_whole_picture_and_its_mime_type() -> None:
    conn, dom = running_domain()
    try:
        mime, data = capture(dom)
    finally:
        conn.close()
    assert mime == "image/png" and data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_a_screenshot_libvirt_refuses_is_noted_not_raised(tmp_path: Path) -> None:
    """(The test driver answers even for a domain that is off, unlike QEMU; a connection
    that is closed is refused by any driver.)"""
    conn, dom = running_domain()
    conn.close()
    rec = ScreenRecorder(tmp_path / "screens")
    assert rec.take(dom) is None
    assert rec.where().startswith("no screenshot (libvirtError: ")


def test_screenshots_every_takes_one_at_start_and_one_at_the_end(tmp_path: Path) -> None:
    conn, dom = running_domain()
    taken = threading.Semaphore(0)

    def grab(d: libvirt.virDomain) -> tuple[str, bytes]:
        taken.release()
        return capture(d)

    rec = ScreenRecorder(tmp_path / "screens", grab=grab)
    try:
        with screenshots_every(rec, dom, interval=3600):
            assert taken.acquire(blocking=False)  # the first one, before the block runs
            assert rec.latest == tmp_path / "screens" / "latest.png"
    finally:
        conn.close()
    assert taken.acquire(blocking=False)  # the last one, as the block ended
