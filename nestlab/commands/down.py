"""``nestlab down``: remove what the lab created, L2s first, and nothing else.

libvirt objects are recognised by nestlab's marking (domain metadata; network
name and DNS domain), never by name alone. The image cache stays; the lab's
key pair stays unless ``--purge``, which removes only a folder marked as that
lab's. A lab whose state is damaged, or whose sandbox daemon died, can still
be taken down: what cannot be asked of libvirt is removed with the sandbox.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from nestlab import sandbox as sandboxes
from nestlab.commands.access import ssh_config_path
from nestlab.commands.context import LabContext
from nestlab.drivers import driver_for
from nestlab.errors import InputError, NestlabError
from nestlab.files import FileProblem
from nestlab.progress import Reporter
from nestlab.state.keys import known_hosts_path
from nestlab.state.record import (
    LabRecord,
    NoSuchLab,
    is_lab_dir,
    lab_lock,
    load_record,
    record_path,
    require_lab_dir,
)
from nestlab.state.seen import forget_seen
from nestlab.virt import nodefiles, objects
from nestlab.virt.connection import LibvirtError, connect


@dataclass
class DownResult:
    removed_domains: list[str] = field(default_factory=list)
    removed_networks: list[str] = field(default_factory=list)
    removed_guests: list[str] = field(default_factory=list)
    """L2s stopped and removed inside their L1s."""
    notes: list[str] = field(default_factory=list)
    purged: bool = False
    removed_node_folders: list[str] = field(default_factory=list)
    """The L1s' folders whose copies were removed from the lab's node."""


def down(lab_dir: Path, purge: bool, reporter: Reporter, uri: str) -> DownResult:
    """Take the lab down; ``uri`` is used only when the lab's record is unreadable."""
    require_lab_dir(lab_dir)
    if not is_lab_dir(lab_dir, lab_dir.name):
        raise InputError(f"{lab_dir} is not the folder of a nestlab lab named "
                         f"{lab_dir.name!r}; nestlab will not touch it")
    result = DownResult()
    with lab_lock(lab_dir, "down"):
        try:
            record: LabRecord | None = load_record(lab_dir)
        except NoSuchLab:
            if not purge:
                raise NoSuchLab(f"lab {lab_dir.name!r} is not up (only its keys are kept)",
                                hint=f"`nestlab down --lab {lab_dir.name} --purge` removes "
                                     "them too.") from None
        except FileProblem as exc:
            result.notes.append(f"{exc.message}; removing what libvirt says is the lab's")
            _take_down(lab_dir, None, uri, reporter, result)
        else:
            _take_down(lab_dir, record, uri, reporter, result)
        if purge:
            _remove_tree(lab_dir)
            result.purged = True
    return result


def _take_down(lab_dir: Path, record: LabRecord | None, uri: str, reporter: Reporter,
               result: DownResult) -> None:
    ctx: LabContext | None = None
    if record is not None:
        try:
            ctx = LabContext.load(lab_dir)
        except InputError as exc:
            result.notes.append(f"the lab's state is damaged ({exc.message.splitlines()[0]}); "
                                "removing what libvirt says is the lab's")
        box = sandboxes.Sandbox(record.lab, lab_dir / "sandbox") if record.sandbox else None
        lab_uri = record.uri
    else:
        box = _sandbox_by_folder(lab_dir)
        lab_uri = box.uri if box else uri
    if box is None or sandboxes.is_running(box):
        try:
            if ctx is not None:
                with reporter.phase("L0", "remove L2s"):
                    _remove_l2s(ctx, result)
            with reporter.phase("L0", "remove L1s and networks"):
                _remove_owned(lab_uri, lab_dir.name, result)
            if ctx is not None and record is not None and \
                    nodefiles.needs_copies(record.uri, record.node):
                with reporter.phase("L0", f"remove files on node {record.node}"):
                    conn = connect(record.uri)
                    try:
                        result.removed_node_folders = nodefiles.remove_host_files(
                            conn, list(ctx.plan.hosts))
                    finally:
                        conn.close()
        except LibvirtError as exc:
            if box is None:
                raise  # the host's libvirtd: nothing else can remove its objects
            result.notes.append(f"the sandbox's libvirtd does not answer ({exc.message}); "
                                "its domains go with the sandbox")
    if box is not None:
        with reporter.phase("L0", "stop sandbox"):
            sandboxes.stop(box)
            _remove_tree(box.root)
    with reporter.phase("L0", "remove disks"):
        _remove_tree(lab_dir / "hosts")
        # The guests are gone: their pinned host keys would refuse the next ones.
        known_hosts_path(lab_dir).unlink(missing_ok=True)
        ssh_config_path(lab_dir).unlink(missing_ok=True)
        record_path(lab_dir).unlink(missing_ok=True)
        forget_seen(lab_dir)


def _sandbox_by_folder(lab_dir: Path) -> sandboxes.Sandbox | None:
    """Without a readable record, a sandbox folder says the lab ran in one."""
    root = lab_dir / "sandbox"
    return sandboxes.Sandbox(lab_dir.name, root) if root.is_dir() else None


def _remove_owned(uri: str, lab: str, result: DownResult) -> None:
    conn = connect(uri)
    try:
        for dom, _meta in sorted(objects.owned_domains(conn, lab),
                                 key=lambda pair: pair[1].get("role", "") != "l2"):
            objects.remove_domain(dom)
            result.removed_domains.append(dom.name())
        for net in list(objects.owned_networks(conn, lab)):
            objects.remove_network(net)
            result.removed_networks.append(net.name())
    finally:
        conn.close()


def _remove_tree(path: Path) -> None:
    """Remove a folder nestlab made; a failure stops `down` (its record stays, so `down`
    again finds what is left) instead of leaving folders no command can find."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    try:
        shutil.rmtree(path)
    except OSError as exc:
        raise NestlabError(f"cannot remove {exc.filename or path}: {exc.strerror}",
                           hint="Fix that, then run `nestlab down` again.") from None


def _remove_l2s(ctx: LabContext, result: DownResult) -> None:
    """Stop the L2s inside each running L1 first; an L1 that is not reachable is noted."""
    conn = ctx.libvirt()
    try:
        running = {dom.name() for dom, _ in objects.owned_domains(conn, ctx.name)
                   if dom.isActive()}
    finally:
        conn.close()
    for host in ctx.plan.hosts:
        if not host.guests or host.domain_name not in running:
            continue
        driver = driver_for(ctx, host)
        transport = driver.session(host)
        try:
            transport.wait_until_reachable(30)
            driver.remove_guests(host, transport)
            result.removed_guests.extend(g.name for g in host.guests)
        except NestlabError as exc:
            result.notes.append(f"{host.name}: L2s not stopped one by one ({exc.message}); "
                                "they end with their L1")
        finally:
            transport.close()
