"""Reaching a guest from outside nestlab's own process: OpenSSH and testinfra.

``ssh_config`` writes an OpenSSH client config for the lab (also read by
pytest-testinfra's paramiko backend): each guest by name, the lab's key, its
pinned host key under its name, and a ProxyCommand that is nestlab itself
(``nestlab _proxy``), so it works from the host's namespace into a sandbox
and through an L1 to an L2.
"""

from __future__ import annotations

import os
import selectors
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

from nestlab.commands.context import LabContext
from nestlab.drivers import ConsoleLog, driver_for
from nestlab.errors import NestlabError
from nestlab.state.keys import known_hosts_path, private_key_path
from nestlab.transport.base import CommandResult
from nestlab.transport.node import open_stream
from nestlab.transport.ssh import SSHTransport


def ssh_config_path(lab_dir: Path) -> Path:
    return lab_dir / "ssh_config"


def run_command(ctx: LabContext, name: str, argv: list[str]) -> CommandResult:
    """Run a command on a guest (an L1, or an L2 through its L1), as its driver reaches it."""
    host, guest = ctx.find(name)
    return driver_for(ctx, host).run(host, guest, argv)


def require_ssh(ctx: LabContext, name: str) -> None:
    """OpenSSH reaches only the guests their L1's driver says it does."""
    host, _guest = ctx.find(name)
    if name not in driver_for(ctx, host).ssh_names(host):
        raise NestlabError(f"{name}: no SSH into {host.name} or its guests",
                           hint=f"`nestlab exec {host.name} -- COMMAND` runs a command there.")


def console_command(ctx: LabContext, name: str) -> list[str] | str:
    host, guest = ctx.find(name)
    return driver_for(ctx, host).console(host, guest)


def console_log(ctx: LabContext, name: str, lines: int) -> ConsoleLog:
    """The end of a guest's console log, wherever its L1's driver keeps it."""
    host, guest = ctx.find(name)
    return driver_for(ctx, host).read_console_log(host, guest, lines)


def write_ssh_config(ctx: LabContext) -> Path:
    proxy = shlex.join([sys.executable, "-m", "nestlab", "_proxy", "--lab-dir",
                        str(ctx.lab_dir)])
    blocks = []
    for host in ctx.plan.hosts:
        for name in driver_for(ctx, host).ssh_names(host):
            blocks.append(
                f"Host {name}\n"
                f"  HostName {name}\n"
                "  User root\n"
                f"  IdentityFile {private_key_path(ctx.lab_dir)}\n"
                "  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {known_hosts_path(ctx.lab_dir)}\n"
                f"  HostKeyAlias {name}\n"
                "  StrictHostKeyChecking yes\n"
                f"  ProxyCommand {proxy} {name}\n"
            )
    path = ssh_config_path(ctx.lab_dir)
    path.write_text("# Written by nestlab for lab " + ctx.name + "\n" + "\n".join(blocks))
    return path


def relay(ctx: LabContext, name: str) -> None:
    """Connect stdin/stdout to the guest's SSH port (an L2 through its L1)."""
    require_ssh(ctx, name)
    host, guest = ctx.find(name)
    l1 = driver_for(ctx, host).session(host)
    assert isinstance(l1, SSHTransport)  # require_ssh: a guest OpenSSH reaches
    stream: Any
    if guest is None:
        stream = open_stream(ctx.record.uri, ctx.record.netns, str(host.nics[0].ip), 22, 30)
    else:
        l1.wait_until_reachable(60)
        stream = l1.open_channel(str(guest.ip), 22, 30)
    try:
        _pump(stream)
    finally:
        stream.close()
        l1.close()


def _pump(stream: Any) -> None:
    selector = selectors.DefaultSelector()
    stdin, stdout_buffer = sys.stdin.buffer, sys.stdout.buffer
    selector.register(stdin, selectors.EVENT_READ, "in")
    selector.register(stream, selectors.EVENT_READ, "out")
    while True:
        for key, _ in selector.select():
            if key.data == "in":
                data = os.read(stdin.fileno(), 65536)
                if not data:
                    if isinstance(stream, socket.socket):
                        stream.shutdown(socket.SHUT_WR)
                    else:
                        stream.shutdown_write()
                    selector.unregister(stdin)
                    continue
                stream.sendall(data)
            else:
                data = stream.recv(65536)
                if not data:
                    return
                stdout_buffer.write(data)
                stdout_buffer.flush()
