"""The one exception family nestlab raises for conditions a user can act on.

Only ``cli.py`` turns these into text and exit codes; everything else raises.
"""

from __future__ import annotations

from dataclasses import dataclass


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
        where = f"{filename}:{self.line}" if self.line else filename
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class LabFileError(InputError):
    """A lab file that cannot be read or is not valid; lists every problem found."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = problems
        lines = [p.describe(filename) for p in problems]
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(
            f"{filename}: {count}:\n" + "\n".join(f"  {line}" for line in lines),
            hint="`nestlab schema` prints the lab file's JSON Schema.",
        )


class FactsFileError(InputError):
    """A recorded host-facts file that cannot be read."""


class HostCannotRunLab(NestlabError):
    """The host check says no: the message lists the failing checks."""
