"""``nestlab down``: remove what the lab created, L2s first, and nothing else.

libvirt objects are recognised by nestlab's marking (domain metadata; network
name and DNS domain), never by name alone. The image cache stays; the lab's
key pair stays unless ``--purge``.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from nestlab import sandbox as sandboxes
from nestlab.access import ssh_config_path
from nestlab.errors import NestlabError
from nestlab.labctx import LabContext
from nestlab.labkeys import known_hosts_path
from nestlab.progress import Reporter
from nestlab.provision import linux, windows
from nestlab.state import lab_lock, record_path
from nestlab.transport import Transport
from nestlab.transport.winrm import WinRMTransport
from nestlab.virt import objects


@dataclass
class DownResult:
    removed_domains: list[str] = field(default_factory=list)
    removed_networks: list[str] = field(default_factory=list)
    l2_notes: list[str] = field(default_factory=list)
    purged: bool = False


def down(lab_dir: Path, purge: bool, reporter: Reporter) -> DownResult:
    result = DownResult()
    with lab_lock(lab_dir, "down"):
        if not record_path(lab_dir).exists():
            if purge and lab_dir.exists():
                _purge(lab_dir)
                result.purged = True
                return result
            raise NestlabError(f"lab {lab_dir.name!r} is not up here (no state in {lab_dir})")
        ctx = LabContext.load(lab_dir)
        box = ctx.sandbox
        daemon_there = box is None or sandboxes.is_running(box)
        if daemon_there:
            with reporter.phase("L0", "remove L2s"):
                _remove_l2s(ctx, result)
            with reporter.phase("L0", "remove L1s and networks"):
                conn = ctx.libvirt()
                try:
                    for dom, _meta in sorted(objects.owned_domains(conn, ctx.lab.name),
                                             key=lambda pair: pair[1].get("role", "") != "l2"):
                        result.removed_domains.append(dom.name())
                        objects.remove_domain(dom)
                    for net in list(objects.owned_networks(conn, ctx.lab.name)):
                        result.removed_networks.append(net.name())
                        objects.remove_network(net)
                finally:
                    conn.close()
        if box is not None:
            with reporter.phase("L0", "stop sandbox"):
                sandboxes.stop(box)
                shutil.rmtree(box.root, ignore_errors=True)
        with reporter.phase("L0", "remove disks"):
            shutil.rmtree(lab_dir / "hosts", ignore_errors=True)
            # The guests are gone: their pinned host keys would refuse the next ones.
            known_hosts_path(lab_dir).unlink(missing_ok=True)
            ssh_config_path(lab_dir).unlink(missing_ok=True)
            record_path(lab_dir).unlink()
        if purge:
            _purge(lab_dir)
            result.purged = True
    return result


def _remove_l2s(ctx: LabContext, result: DownResult) -> None:
    """Stop the L2s inside each running L1 first; an L1 that is not reachable is noted."""
    conn = ctx.libvirt()
    try:
        running = {dom.name() for dom, _ in objects.owned_domains(conn, ctx.lab.name)
                   if dom.isActive()}
    finally:
        conn.close()
    for host in ctx.plan.hosts:
        if not host.guests or host.domain_name not in running:
            continue
        transport: Transport = (ctx.windows_transport(host) if host.os.is_windows
                                else ctx.l1_transport(host))
        try:
            transport.wait_until_reachable(30)
            if isinstance(transport, WinRMTransport):
                windows.remove_guests(transport, host)
            else:
                linux.remove_guests(transport, host)
        except NestlabError as exc:
            result.l2_notes.append(f"{host.name}: L2s not stopped one by one ({exc.message}); "
                                   "they end with their L1")
        finally:
            transport.close()


def _purge(lab_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(lab_dir)
