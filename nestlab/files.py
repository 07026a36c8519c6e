"""Files nestlab reads and writes as root: bounded reads of regular files, atomic writes.

Reading: whatever a user or a crash can put at a path (a FIFO, /dev/zero, a
file of gigabytes, bytes that are not UTF-8) ends in one ``FileProblem``
(exit 2) naming the file, in bounded time and memory.

Writing: a temporary file made with O_EXCL in the target's folder (never a
predictable name a planted symlink could redirect), written, flushed, given
its mode, then renamed over the target, so a reader sees the old file or the
new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from nestlab.errors import InputError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class FileProblem(InputError):
    """A file nestlab needs cannot be read as what it should be."""


def _open_regular(path: str | Path, what: str) -> int:
    """A read-only descriptor of a regular file; anything else is refused (and closed)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise FileProblem(f"{path}: no such {what}") from None
    except OSError as exc:
        raise FileProblem(f"{path}: cannot open the {what}: {exc.strerror}") from None
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError as exc:
        os.close(fd)
        raise FileProblem(f"{path}: cannot read the {what}: {exc.strerror}") from None
    if not regular:
        os.close(fd)
        raise FileProblem(f"{path}: the {what} is not a regular file")
    return fd


def read_bounded_bytes(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is refused."""
    fd = _open_regular(path, what)
    try:
        info = os.fstat(fd)
        if info.st_size > limit:
            raise FileProblem(f"{path}: the {what} is {info.st_size} bytes; at most {limit} "
                              "are accepted")
        chunks, total = [], 0
        while chunk := os.read(fd, 64 * KiB):
            total += len(chunk)
            if total > limit:  # it grew while being read
                raise FileProblem(f"{path}: the {what} is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise FileProblem(f"{path}: cannot read the {what}: {exc.strerror}") from None
    finally:
        os.close(fd)


def read_bounded_text(path: str | Path, limit: int, what: str = "file") -> str:
    """Like ``read_bounded_bytes``, decoded as UTF-8 (anything else is refused)."""
    data = read_bounded_bytes(path, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileProblem(f"{path}: the {what} is not UTF-8 text (byte {exc.start})") from None


def read_tail_bytes(path: str | Path, limit: int, what: str = "file") -> tuple[bytes, bool]:
    """The last ``limit`` bytes of a regular file, and whether that is less than all of it
    (a console log grows for as long as its guest runs: only its end is read)."""
    fd = _open_regular(path, what)
    try:
        start = max(os.lseek(fd, 0, os.SEEK_END) - limit, 0)
        os.lseek(fd, start, os.SEEK_SET)
        chunks, total = [], 0
        while total < limit and (chunk := os.read(fd, min(64 * KiB, limit - total))):
            total += len(chunk)
            chunks.append(chunk)
        return b"".join(chunks), start > 0
    except OSError as exc:
        raise FileProblem(f"{path}: cannot read the {what}: {exc.strerror}") from None
    finally:
        os.close(fd)


def last_lines(text: str, count: int, cut: bool) -> list[str]:
    """The last ``count`` lines of ``text``, without line ends (``\r\n`` from a serial
    console too). ``cut``: the text starts inside a line, whose tail is left out."""
    lines = text.splitlines()
    if cut and lines:
        lines = lines[1:]
    return [line.rstrip("\r") for line in lines[-count:]] if count > 0 else []


def write_atomic(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` in one rename; the file gets ``mode``."""
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def private_dir(path: Path) -> Path:
    """A folder only its owner can enter (0700), created with its parents if missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def kept_secret(path: Path, make: Callable[[], str], usable: Callable[[str], bool],
                what: str) -> str:
    """A secret made once and kept 0600 in a 0700 folder (a Windows L1's password, a VNC
    password). Written atomically: a crash leaves no file or a whole one. One that is not
    ``usable`` (empty, or damaged) is made anew: nothing can have used it."""
    private_dir(path.parent)
    if os.path.exists(path):
        kept = read_bounded_text(path, 1024, what).strip()
        if usable(kept):
            return kept
    secret = make()
    write_atomic(path, secret)
    return secret
