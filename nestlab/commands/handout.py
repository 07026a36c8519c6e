"""``nestlab handout``: what one student needs to reach one lab (a seat), in one folder.

The folder opens this lab only: its own SSH key, the host keys pinned for its
guests, its Windows passwords; nothing of any other lab. It cannot use
``nestlab _proxy`` (a student has neither nestlab nor root on the instructor's
host), so its OpenSSH config reaches an L1 by its address, through the
instructor's host (``ProxyJump``) when given, and an L2 through its L1.

OpenSSH has no token for "the folder of this config": a relative
``IdentityFile`` or ``UserKnownHostsFile`` is opened relative to the current
directory (and ``ProxyJump``'s own ssh gets the same ``-F`` and directory), so
the config is used from inside the folder (``ssh -F ssh_config kvm1``), or
through ``connect.sh``, which goes there first. Wherever the folder is copied,
that works.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from nestlab.commands.context import LabContext
from nestlab.drivers import driver_for
from nestlab.drivers.base import RemoteAccess
from nestlab.errors import InputError, NestlabError
from nestlab.files import KiB, read_bounded_bytes, read_bounded_text, write_atomic
from nestlab.plan import HostPlan
from nestlab.state.keys import known_hosts_path, private_key_path, public_key_path

JUMP_ALIAS = "nestlab-jump"
_JUMP = re.compile(r"(?P<user>[a-z_][a-z0-9_.-]{0,31})@(?P<host>[A-Za-z0-9]"
                   r"[A-Za-z0-9.-]{0,252})(:(?P<port>[0-9]{1,5}))?")


@dataclass(frozen=True)
class Jump:
    """The instructor's host as students reach it with their own account there."""

    user: str
    host: str
    port: int = 22


@dataclass(frozen=True)
class Handout:
    lab: str
    folder: Path
    files: list[str]
    ssh_guests: list[str] = field(default_factory=list)
    windows_l1s: list[str] = field(default_factory=list)


def parse_jump(text: str) -> Jump:
    """``USER@HOST[:PORT]``; anything else is bad input (it ends up in an OpenSSH config)."""
    match = _JUMP.fullmatch(text)
    port = int(match["port"] or 22) if match else 0
    if match is None or not 0 < port < 65536:
        shown = text.encode("unicode_escape").decode()[:80]
        raise InputError(f"--jump {shown!r} is not USER@HOST[:PORT]",
                         hint="The account students log in to on your host, e.g. "
                              "--jump student@lab.example.edu:22.")
    return Jump(match["user"], match["host"], port)


def write_handout(ctx: LabContext, out: Path, jump: Jump | None) -> Handout:
    """Write the lab's handout into ``out`` (new, or an empty folder), 0700 with its
    secrets 0600. Written into a temporary folder beside it and renamed: a failure
    leaves nothing."""
    _check_out(out)
    if ctx.record.sandbox:
        raise NestlabError(
            f"lab {ctx.name} runs in a sandbox (network namespace {ctx.record.netns}): its "
            "guests cannot be reached from this host's network, so not by students either",
            hint="For students, bring the lab up without --sandbox (this host's libvirtd "
                 "must run nested guests: `nestlab check`).")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        handout = _write(ctx, staging, jump)
        if out.is_dir():
            out.rmdir()  # empty, checked above
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Handout(handout.lab, out, handout.files, handout.ssh_guests, handout.windows_l1s)


def _check_out(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(f"--out {out}: exists and is not a folder",
                         hint="Give a new folder; the handout makes it.")
    if out.is_dir() and any(out.iterdir()):
        raise InputError(f"--out {out}: the folder is not empty",
                         hint="Give a new or empty folder: a handout never mixes with other "
                              "files (another seat's).")
    if not out.parent.is_dir():
        raise InputError(f"--out {out}: no folder {out.parent} to make it in",
                         hint=f"mkdir -p {out.parent}")


def _write(ctx: LabContext, folder: Path, jump: Jump | None) -> Handout:
    handout = Handout(ctx.name, folder, [])
    ssh_hosts = {host.name: driver_for(ctx, host).ssh_names(host) for host in ctx.plan.hosts}
    handout.ssh_guests.extend(name for names in ssh_hosts.values() for name in names)
    if handout.ssh_guests:
        _put(handout, "id_ed25519",
             read_bounded_bytes(private_key_path(ctx.lab_dir), 16 * KiB, "private key"))
        _put(handout, "id_ed25519.pub",
             read_bounded_bytes(public_key_path(ctx.lab_dir), 16 * KiB, "public key"), 0o644)
        _put(handout, "known_hosts", pinned_host_keys(ctx, handout.ssh_guests))
        _put(handout, "ssh_config", ssh_config_text(ctx, jump))
        _put(handout, "connect.sh", CONNECT_SH, 0o700)
    access = {}
    for host in ctx.plan.hosts:
        access[host.name] = driver_for(ctx, host).remote_access(host)
        if access[host.name].secrets:
            handout.windows_l1s.append(host.name)
        for name, source in access[host.name].secrets.items():
            if not source.exists():
                raise NestlabError(f"{host.name}: the lab has no {source.name} yet",
                                   hint="`nestlab up` makes it; then write the handout.")
            _put(handout, name, read_bounded_bytes(source, KiB, name))
    _put(handout, "README.txt", readme_text(ctx, jump, ssh_hosts, access))
    return handout


def _put(handout: Handout, name: str, data: str | bytes, mode: int = 0o600) -> None:
    write_atomic(handout.folder / name, data, mode)
    handout.files.append(name)


def pinned_host_keys(ctx: LabContext, names: list[str]) -> str:
    """The lab's known_hosts lines of these guests, each guest's key(s) pinned under its
    name; a guest with none is refused (StrictHostKeyChecking would refuse it anyway)."""
    path = known_hosts_path(ctx.lab_dir)
    text = read_bounded_text(path, 1024 * KiB, "known_hosts") if path.exists() else ""
    wanted, kept, pinned = set(names), [], set()
    for line in text.splitlines():
        fields = line.split()
        hosts = set(fields[0].split(",")) if len(fields) >= 3 else set()
        if hosts and hosts <= wanted:
            kept.append(line)
            pinned |= hosts
    missing = [name for name in names if name not in pinned]
    if missing:
        raise NestlabError(
            f"lab {ctx.name}: no pinned SSH host key for {', '.join(missing)}",
            hint="nestlab pins a guest's key when it first reaches it: `nestlab exec --lab "
                 f"{ctx.name} {missing[0]} -- true`, then write the handout again.")
    return "\n".join(kept) + "\n"


def ssh_config_text(ctx: LabContext, jump: Jump | None) -> str:
    """Every guest OpenSSH reaches: an L1 at its address (through ``jump`` when given), an
    L2 through its L1; the handout's key only, host keys from its known_hosts only."""
    blocks = [f"# nestlab handout: lab {ctx.name}. Run from this folder: "
              "ssh -F ssh_config NAME (or ./connect.sh NAME from anywhere).\n"
              "# OpenSSH opens the relative paths below from the current folder.\n"]
    if jump is not None:
        blocks.append(f"Host {JUMP_ALIAS}\n  HostName {jump.host}\n  Port {jump.port}\n"
                      f"  User {jump.user}\n")
    for host in ctx.plan.hosts:
        names = driver_for(ctx, host).ssh_names(host)
        addresses = {host.name: (str(host.nics[0].ip), JUMP_ALIAS if jump else None)}
        addresses |= {g.name: (str(g.ip), host.name) for g in host.guests}
        for name in names:
            address, via = addresses[name]
            blocks.append(
                f"Host {name}\n"
                f"  HostName {address}\n"
                "  User root\n"
                + (f"  ProxyJump {via}\n" if via else "")
                + "  IdentityFile id_ed25519\n"
                "  IdentitiesOnly yes\n"
                "  UserKnownHostsFile known_hosts\n"
                f"  HostKeyAlias {name}\n"
                "  StrictHostKeyChecking yes\n"
                "  CheckHostIP no\n")
    return "\n".join(blocks)


CONNECT_SH = """#!/bin/sh
# ssh to a machine of this handout from anywhere: ./connect.sh NAME [COMMAND...]
# (OpenSSH opens the config's relative paths from the current folder: this one.)
cd "$(dirname "$0")" || exit 1
exec ssh -F ssh_config "$@"
"""


def readme_text(ctx: LabContext, jump: Jump | None, ssh_hosts: dict[str, list[str]],
                access: dict[str, RemoteAccess]) -> str:
    """One page: the machines and their addresses, how to connect, what not to do."""
    lines = [f"Your lab: {ctx.name}", "=" * (10 + len(ctx.name)), "",
             "Machines (L1: a hypervisor; L2: a guest inside its L1):"]
    for host in ctx.plan.hosts:
        lines.append(f"  {host.name:<12} L1  {host.nics[0].ip}  ({host.os})")
        lines += [f"  {g.name:<12} L2  {g.ip}  (inside {host.name})" for g in host.guests]
    via = (f" through {jump.user}@{jump.host} (port {jump.port}, your own account and "
           "password or key there)" if jump else "")
    if any(ssh_hosts.values()):
        lines += ["", "Connect with SSH (OpenSSH):",
                  "  cd into this folder, then:  ssh -F ssh_config NAME",
                  "  or from anywhere:           /path/to/this/folder/connect.sh NAME",
                  f"  L1s are reached{via or ' directly'}; L2s through their L1.",
                  "  Copy files:  scp -F ssh_config FILE NAME:/root/   (from this folder)",
                  "  The machines' host keys are pinned in known_hosts: OpenSSH refuses a "
                  "machine whose key changed (after a reset you get a new handout)."]
    for host in ctx.plan.hosts:
        lines += _windows_lines(host, access[host.name], jump)
    lines += ["", "Do not:",
              "  - share this folder: it opens your lab (and only yours);",
              "  - change the L1s' network settings or addresses: you would lock yourself "
              "out (ask for a reset);"]
    if any(ssh_hosts.values()):
        lines += ["  - change root's authorized_keys, the SSH server or its host keys;",
                  "  - copy the key into ~/.ssh or add it to an agent: use it from here;"]
    if any(a.secrets for a in access.values()):
        lines += ["  - change Administrator's password or WinRM's settings: the lab's own "
                  "checks use them;"]
    lines.append("  - keep anything you need only on the lab: a reset wipes it.")
    return "\n".join(lines) + "\n"


def _windows_lines(host: HostPlan, access: RemoteAccess, jump: Jump | None) -> list[str]:
    if not access.secrets:
        return []
    lines = ["", f"{host.name} (Windows): user Administrator, password in "
                 f"{host.name}.password."]
    forward = f"ssh -p {jump.port} {jump.user}@{jump.host}" if jump else None
    for what, port in access.ports:
        if forward:
            lines.append(f"  {what}: {forward} -N -L {port}:{host.nics[0].ip}:{port}, "
                         f"then connect to localhost:{port}")
        else:
            lines.append(f"  {what}: {host.nics[0].ip}:{port}")
    if access.screen_port is not None and forward:
        lines.append(f"  Its screen (VNC, password in {host.name}.vnc): {forward} -N -L "
                     f"5900:127.0.0.1:{access.screen_port}, then a VNC viewer on "
                     "localhost:5900")
    elif access.screen_port is not None:
        lines.append(f"  Its screen (VNC, password in {host.name}.vnc): 127.0.0.1:"
                     f"{access.screen_port} on the lab's host")
    else:
        lines.append(f"  Its screen (VNC, password in {host.name}.vnc): on 127.0.0.1 of the "
                     "lab's host, at a port that changes when it restarts: ask for it.")
    lines.append("  Its L2s run under Hyper-V: reach them from inside it (Hyper-V Manager).")
    return lines
