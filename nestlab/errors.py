"""The one exception family nestlab raises for conditions a user can act on.

Only ``cli.py`` turns these into text and exit codes; everything else raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from nestlab.plural import counted

MAX_SHOWN_PROBLEMS = 20
"""A bad file can have thousands of problems; the first ones are enough to start fixing."""
_MAX_PATH_CHARS = 80
_MAX_MESSAGE_CHARS = 240


class NestlabError(Exception):
    """A failure the user can understand and fix; ``hint`` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(NestlabError):
    """Bad input: a lab file, a facts file, an option. Exit code 2."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    path: str
    """Key path inside the file, e.g. ``hosts[0].memory`` (empty for the whole file)."""
    message: str
    line: int | None = None

    def describe(self, filename: str) -> str:
        """One line for a terminal: key and message come from the file, so they are
        escaped and cut to a length a person reads."""
        where = f"{filename}:{self.line}" if self.line else filename
        path = shorten(escape_control_chars(self.path), _MAX_PATH_CHARS)
        key = f" {path}:" if path else ""
        return f"{where}:{key} {shorten(escape_control_chars(self.message), _MAX_MESSAGE_CHARS)}"


class LabFileError(InputError):
    """A lab file that is not valid; lists the problems found (the first
    ``MAX_SHOWN_PROBLEMS`` of them, and how many more there are)."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = problems
        shown = escape_control_chars(filename)
        lines = [p.describe(shown) for p in problems[:MAX_SHOWN_PROBLEMS]]
        if len(problems) > MAX_SHOWN_PROBLEMS:
            lines.append(f"... and {len(problems) - MAX_SHOWN_PROBLEMS} more")
        count = counted(len(problems), "problem")
        super().__init__(
            f"{shown}: {count}:\n" + "\n".join(f"  {line}" for line in lines),
            hint="`nestlab schema` prints the lab file's JSON Schema.",
        )


class FactsFileError(InputError):
    """A recorded host-facts file that cannot be read."""


class HostCannotRunLab(NestlabError):
    """The host check says no: the message lists the failing checks."""


def escape_control_chars(text: str, keep_newlines: bool = False) -> str:
    """``text`` with every character ``repr`` would escape shown as ``\\x1b``, ``\\u202e``...

    Keys, values and host strings (a CPU model name) come from files; an ESC or
    C1 sequence in them would retitle or rewrite the user's terminal, a bidi
    override would reorder what they read. Newlines may be kept where a
    message is made of lines. Idempotent: the result has nothing left to escape.
    """
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() or (keep_newlines and ch == "\n") else _escape_char(ch)
        for ch in text
    )


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters; a cut ends in '...' so it is seen as one."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def brief_repr(value: object, limit: int = 60) -> str:
    """``repr`` for a message, at most ``limit`` characters: a bad value can be 200 KB."""
    if isinstance(value, str) and len(value) > limit:
        value = value[: limit + 1]  # repr of the head is enough; shorten marks the cut
    try:
        text = repr(value)
    except ValueError:  # an int beyond sys.get_int_max_str_digits() has no repr
        text = f"<{type(value).__name__} too large to show>"
    return shorten(text, limit)
