"""Screenshots of a guest's screen, kept while Windows installs or first boots.

An unattended Windows install shows nothing but its screen: nestlab keeps the
latest screenshot (``latest.png``, or ``.ppm``: the format is what QEMU gives,
named by the MIME type libvirt returns) and a few earlier, different ones
(``previous-1.png`` is the one before) in a folder, never more. A screenshot
that fails is noted and skipped: it never fails a build or a boot.

Whether the screen still changes is the one sign of progress a stuck setup
gives (a product-key prompt is a still picture, or two with a blinking caret),
so the recorder also says how long it has shown no screen it had not shown
recently.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import libvirt

from nestlab.files import private_dir, write_atomic
from nestlab.waiting import describe

KEEP = 5
"""The latest screenshot and this many less one earlier, different ones."""
MAX_BYTES = 32 * 1024 * 1024
"""A 1920x1080 PPM is 6 MiB; anything larger is not a screenshot to keep."""
RECENT = 64
"""How many recent screens count as "seen": a spinner's frames keep coming as new ones,
a blinking caret's two do not."""
_EXTENSIONS = {"image/png": "png", "image/x-portable-pixmap": "ppm"}


def capture(dom: libvirt.virDomain) -> tuple[str, bytes]:
    """One screenshot of the domain's first screen: (MIME type, bytes)."""
    stream = dom.connect().newStream(0)
    try:
        mime = dom.screenshot(stream, 0, 0)
        chunks, total = [], 0
        while chunk := stream.recv(256 * 1024):
            if isinstance(chunk, int):  # -2: only a non-blocking stream says "not yet"
                raise libvirt.libvirtError("screenshot stream would block")
            total += len(chunk)
            if total > MAX_BYTES:
                raise ValueError(f"screenshot larger than {MAX_BYTES} bytes")
            chunks.append(chunk)
        stream.finish()
    except BaseException:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        raise
    return str(mime), b"".join(chunks)


def extension(mime: str) -> str:
    """The file extension for libvirt's MIME type (``img`` for one nestlab does not know)."""
    return _EXTENSIONS.get(mime, "img")


class ScreenRecorder:
    """Keeps the screenshots of one guest in ``folder`` (0700, files 0600: a screen can
    show what is typed); remembers the latest and when the screen last showed something
    new. ``clock`` is for tests."""

    def __init__(self, folder: Path, keep: int = KEEP,
                 grab: Callable[[libvirt.virDomain], tuple[str, bytes]] = capture,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.folder = folder
        self.keep = keep
        self._grab = grab
        self._clock = clock
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._latest_digest: str | None = None
        self._new_at: float | None = None
        self.latest: Path | None = None
        self.error: str | None = None
        """Why the last screenshot failed (None after one that worked)."""
        self._lock = threading.Lock()

    def take(self, dom: libvirt.virDomain) -> Path | None:
        """Take one screenshot and keep it; the latest file, or None when it failed."""
        with self._lock:
            try:
                mime, data = self._grab(dom)
                self._keep(extension(mime), data)
            except Exception as exc:  # any failure: a screenshot never fails a build or boot
                self.error = describe(exc)
                return None
            self.error = None
            return self.latest

    def _keep(self, ext: str, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        if digest not in self._recent:
            self._new_at = self._clock()
        self._recent[digest] = None
        self._recent.move_to_end(digest)
        while len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        if digest == self._latest_digest and self.latest is not None and self.latest.exists():
            return  # the same screen: the ring keeps different ones
        private_dir(self.folder)
        self._rotate()
        self.latest = self.folder / f"latest.{ext}"
        write_atomic(self.latest, data, mode=0o600)
        self._latest_digest = digest

    def _rotate(self) -> None:
        """previous-(n-1) -> previous-n, ..., latest -> previous-1; the oldest goes."""
        for old in self._named(f"previous-{self.keep - 1}"):
            old.unlink()
        for number in range(self.keep - 2, 0, -1):
            for old in self._named(f"previous-{number}"):
                old.rename(old.with_name(f"previous-{number + 1}{old.suffix}"))
        for old in self._named("latest"):
            old.rename(old.with_name(f"previous-1{old.suffix}"))

    def _named(self, stem: str) -> list[Path]:
        return [p for p in self.folder.glob(f"{stem}.*") if not p.name.startswith(".")]

    def unchanged_for(self) -> float | None:
        """Seconds since the screen last showed something it had not shown recently;
        None before the first screenshot."""
        return None if self._new_at is None else self._clock() - self._new_at

    def where(self) -> str:
        """The end of a progress line or an error: where the last screenshot is."""
        if self.latest is not None:
            return f"last screenshot: {self.latest}"
        return f"no screenshot ({self.error or 'none taken yet'})"


def latest_screenshot(folder: Path) -> Path | None:
    """The latest screenshot kept in ``folder``, if any (for `status`)."""
    found = sorted(p for p in folder.glob("latest.*") if not p.name.startswith("."))
    return found[0] if found else None


@contextlib.contextmanager
def screenshots_every(recorder: ScreenRecorder, dom: libvirt.virDomain,
                      interval: float) -> Iterator[ScreenRecorder]:
    """Take a screenshot now, then every ``interval`` seconds on a background thread,
    and a last one when the block ends (the screen as the wait ended)."""
    stop = threading.Event()
    recorder.take(dom)

    def loop() -> None:
        while not stop.wait(interval):
            recorder.take(dom)

    thread = threading.Thread(target=loop, name="screenshots", daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        stop.set()
        thread.join(timeout=60)  # a screenshot that hangs must not hold the caller
        recorder.take(dom)
