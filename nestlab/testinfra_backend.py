"""A pytest-testinfra backend over nestlab's own guest sessions.

testinfra's paramiko backend ignores ``UserKnownHostsFile`` and accepts unknown
host keys with a warning; this one runs each command through the lab's driver
(SSH with the lab's key and its pinned host keys for Linux guests, an L2 through
its L1; PowerShell over WinRM for a Windows L1), on a session kept open for the
whole run.
"""

from __future__ import annotations

from typing import Any

from testinfra.backend.base import BaseBackend, CommandResult

from nestlab.drivers import Shell


class NestlabBackend(BaseBackend):  # type: ignore[misc]  # testinfra has no stubs
    NAME = "nestlab"

    def __init__(self, name: str, shell: Shell, **kwargs: Any) -> None:
        self._shell = shell
        super().__init__(name, **kwargs)

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        command = self.get_command(command, *args)
        result = self._shell.run(command)
        return self.result(result.exit_status, self.encode(command),
                           result.stdout.encode(), result.stderr.encode())
