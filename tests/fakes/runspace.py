"""FAKE pypsrp runspace factory for tests of WinRMTransport's own logic (retries,
lost sessions, reconnects, parameter passing). No WinRM server exists here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class FakePowerShell:
    commands: list[tuple[str, Any]] = field(default_factory=list)

    def add_script(self, script: str) -> FakePowerShell:
        self.commands.append(("script", script))
        return self

    def add_parameters(self, parameters: dict[str, Any]) -> FakePowerShell:
        self.commands.append(("parameters", dict(parameters)))
        return self

    def add_command(self, command: str) -> FakePowerShell:
        self.commands.append(("command", command))
        return self

    def add_argument(self, argument: str) -> FakePowerShell:
        self.commands.append(("argument", argument))
        return self


@dataclass
class FakeRunspaceFactory:
    """``open_failures``: exceptions raised by the next opens, in order."""

    open_failures: list[BaseException] = field(default_factory=list)
    invoke_failures: list[BaseException] = field(default_factory=list)
    output: list[Any] = field(default_factory=lambda: ["ok"])
    opened: int = 0
    closed: int = 0
    invoked: list[FakePowerShell] = field(default_factory=list)
    copied: list[tuple[Path, str]] = field(default_factory=list)

    def open(self) -> Any:
        if self.open_failures:
            raise self.open_failures.pop(0)
        self.opened += 1
        factory = self

        class Pool:
            def close(self) -> None:
                factory.closed += 1

        return Pool()

    def invoke(self, pool: Any, build: Any) -> tuple[list[Any], list[str], bool]:
        if self.invoke_failures:
            raise self.invoke_failures.pop(0)
        ps = FakePowerShell()
        build(ps)
        self.invoked.append(ps)
        return list(self.output), [], False

    def copy(self, local: Path, remote: str) -> None:
        self.copied.append((local, remote))
