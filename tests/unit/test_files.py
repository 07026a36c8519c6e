"""Reading the end of a file that may be huge (a console log), bounded in bytes and lines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nestlab.files import FileProblem, last_lines, read_tail_bytes


def test_only_the_end_of_a_large_file_is_read(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    with log.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of NULs, then the end
        handle.seek(0, os.SEEK_END)
        handle.write(b"half a line\nlast line\r\n")
    data, cut = read_tail_bytes(log, 16, "console log")
    assert (data, cut) == (b"line\nlast line\r\n", True)
    assert last_lines(data.decode(), 10, cut) == ["last line"]  # the cut line is left out


def test_a_short_file_is_read_whole(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_bytes(b"one\ntwo\nthree\n")
    data, cut = read_tail_bytes(log, 1024, "console log")
    assert not cut
    assert last_lines(data.decode(), 2, cut) == ["two", "three"]
    assert last_lines(data.decode(), 10, cut) == ["one", "two", "three"]


def test_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(FileProblem, match="is not a regular file"):
        read_tail_bytes(tmp_path / "fifo", 1024, "console log")
