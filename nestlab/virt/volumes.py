"""Files a lab on a node needs there, copied through the node's own libvirt connection.

A node keeps a lab's files at the same paths as this host (the lab's folder, the
image cache), so the domain XML `up` renders serves both. Each folder is a libvirt
``dir`` storage pool on the node, named after the folder (``nestlab-<hash>``); each
file a volume in it, written with ``virStorageVolUpload`` and read back with
``virStorageVolDownload`` to check its SHA-256. Only then is ``<file>.sha256`` (the
hash) written beside it: a file whose hash file matches is there already and is not
copied again, once per node and file; a copy cut short has none and is made anew.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

import libvirt

from nestlab.virt.connection import LibvirtError, conn_uri, failure

CHUNK = 1024 * 1024
HASH_SUFFIX = ".sha256"
POOL_PREFIX = "nestlab-"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def pool_name(folder: Path) -> str:
    """The node's pool for a folder: named after its path, so one folder is one pool."""
    return POOL_PREFIX + hashlib.sha256(str(folder).encode()).hexdigest()[:16]


def ensure_pool(conn: libvirt.virConnect, folder: Path) -> libvirt.virStoragePool:
    """The node's pool for ``folder`` (made, 0700, and started where missing)."""
    name = pool_name(folder)
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise _failed(conn, f"looking up pool {name}", exc) from None
        xml = (f"<pool type='dir'><name>{name}</name><target><path>{escape(str(folder))}"
               "</path><permissions><mode>0700</mode></permissions></target></pool>")
        try:
            pool = conn.storagePoolDefineXML(xml, 0)
            pool.build(0)
        except libvirt.libvirtError as exc:
            raise _failed(conn, f"making pool {name} at {folder}", exc) from None
    try:
        if not pool.isActive():
            pool.create(0)
        pool.refresh(0)
    except libvirt.libvirtError as exc:
        raise _failed(conn, f"starting pool {name} at {folder}", exc) from None
    return pool


def file_present(conn: libvirt.virConnect, local: Path) -> bool:
    """Whether the node has ``local`` at the same path, checked when it was copied."""
    try:
        pool = conn.storagePoolLookupByName(pool_name(local.parent))
        pool.refresh(0)
        marker = pool.storageVolLookupByName(local.name + HASH_SUFFIX)
        pool.storageVolLookupByName(local.name)
    except libvirt.libvirtError:
        return False
    return _download(conn, marker)[1].decode(errors="replace").strip() == file_sha256(local)


def push_file(conn: libvirt.virConnect, local: Path) -> bool:
    """Copy ``local`` to the same path on the node, unless it is there already; the copy
    is read back and its SHA-256 compared. True when it was copied. Seats on one node
    share its base image: one copies it, the others wait and find it there."""
    with _copying(conn_uri(conn), local):
        if file_present(conn, local):
            return False
        _copy(conn, local)
        return True


def _copy(conn: libvirt.virConnect, local: Path) -> None:
    pool = ensure_pool(conn, local.parent)
    _refuse_shared_folder(pool, local.parent)
    expected = file_sha256(local)
    size = local.stat().st_size
    volume = _new_volume(pool, local.name, size)
    with local.open("rb") as handle:
        _upload(conn, volume, size, handle.read)
    got, _ = _download(conn, volume)
    if got != expected:
        raise LibvirtError(f"{conn_uri(conn)}: {local} arrived with SHA-256 {got}, not "
                           f"{expected}", hint="`nestlab up` again copies it anew.")
    text = (expected + "\n").encode()
    marker = _new_volume(pool, local.name + HASH_SUFFIX, len(text))
    _upload(conn, marker, len(text), _reader(text))


_LOCKS: dict[tuple[str, Path], threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _copying(uri: str, local: Path) -> threading.Lock:
    """The lock of one file on one node, for every thread of this process."""
    with _LOCKS_LOCK:
        return _LOCKS.setdefault((uri, local), threading.Lock())


def _refuse_shared_folder(pool: libvirt.virStoragePool, folder: Path) -> None:
    """A node that sees this host's own folder (``qemu+ssh://root@localhost``) would have
    the file replaced by its copy: refused, with a file made here that it must not see."""
    probe = folder / f".nestlab-probe-{secrets.token_hex(8)}"
    probe.touch(mode=0o600)
    try:
        pool.refresh(0)
        names = set(pool.listVolumes())
    except libvirt.libvirtError as exc:
        raise _failed(pool.connect(), f"listing {folder}", exc) from None
    finally:
        probe.unlink()
    if probe.name in names:
        raise LibvirtError(f"{conn_uri(pool.connect())} sees this host's own {folder}: a "
                           "node is another machine, which gets its own copy",
                           hint="Name the node by a URI of another machine, or run the lab "
                                "at --connect without nodes.")


def remove_folder(conn: libvirt.virConnect, folder: Path) -> bool:
    """Delete the node's copy of ``folder`` (its volumes and its pool). True when it had
    one."""
    try:
        pool = conn.storagePoolLookupByName(pool_name(folder))
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            return False
        raise _failed(conn, f"looking up the pool of {folder}", exc) from None
    try:
        if not pool.isActive():
            pool.create(0)
        pool.refresh(0)
        for volume in pool.listAllVolumes(0):
            volume.delete(0)
        pool.destroy()
        pool.delete(0)
        pool.undefine()
    except libvirt.libvirtError as exc:
        raise _failed(conn, f"removing the copy of {folder}", exc) from None
    return True


def _new_volume(pool: libvirt.virStoragePool, name: str, size: int) -> libvirt.virStorageVol:
    """A fresh volume of ``size`` bytes (a partial one from a copy cut short is replaced)."""
    try:
        pool.storageVolLookupByName(name).delete(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise _failed(pool.connect(), f"replacing volume {name}", exc) from None
    xml = (f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{size}</capacity>"
           "<target><format type='raw'/><permissions><mode>0600</mode></permissions>"
           "</target></volume>")
    try:
        return pool.createXML(xml, 0)
    except libvirt.libvirtError as exc:
        raise _failed(pool.connect(), f"making volume {name}", exc) from None


def _upload(conn: libvirt.virConnect, volume: libvirt.virStorageVol, size: int,
            read: Callable[[int], bytes]) -> None:
    stream = conn.newStream(0)
    try:
        volume.upload(stream, 0, size, 0)
        stream.sendAll(lambda _stream, nbytes, _opaque: read(min(nbytes, CHUNK)), None)
        stream.finish()
    except libvirt.libvirtError as exc:
        _abort(stream)
        raise _failed(conn, f"copying {volume.path()}", exc) from None


def _download(conn: libvirt.virConnect, volume: libvirt.virStorageVol, offset: int = 0,
              length: int = 0, keep: int = 4096) -> tuple[str, bytes]:
    """(the SHA-256 of the volume's bytes from ``offset``, ``length`` of them or all, and
    the first ``keep`` of them: all of a small one)."""
    digest, head = hashlib.sha256(), bytearray()

    def take(_stream: libvirt.virStream, data: bytes, _opaque: object) -> int:
        digest.update(data)
        if len(head) < keep:
            head.extend(data[:keep - len(head)])
        return len(data)

    stream = conn.newStream(0)
    try:
        volume.download(stream, offset, length, 0)
        stream.recvAll(take, None)
        stream.finish()
    except libvirt.libvirtError as exc:
        _abort(stream)
        raise _failed(conn, f"reading back {volume.path()}", exc) from None
    return digest.hexdigest(), bytes(head)


def read_tail(conn: libvirt.virConnect, path: Path, limit: int) -> tuple[bytes, bool]:
    """The last ``limit`` bytes of the node's file at ``path`` (a log its guest writes
    there), and whether that is less than all of it."""
    try:
        pool = conn.storagePoolLookupByName(pool_name(path.parent))
        pool.refresh(0)
        volume = pool.storageVolLookupByName(path.name)
        size = int(volume.info()[1])
    except libvirt.libvirtError as exc:
        raise _failed(conn, f"finding {path}", exc) from None
    start = max(size - limit, 0)
    if size == start:
        return b"", False
    return _download(conn, volume, start, size - start, keep=limit)[1], start > 0


def _abort(stream: libvirt.virStream) -> None:
    # The stream is broken already: the error being raised says why.
    with contextlib.suppress(libvirt.libvirtError):
        stream.abort()


def _reader(data: bytes) -> Callable[[int], bytes]:
    view = memoryview(data)
    offset = 0

    def read(size: int) -> bytes:
        nonlocal offset
        chunk = bytes(view[offset:offset + size])
        offset += len(chunk)
        return chunk

    return read


def _failed(conn: libvirt.virConnect, doing: str, exc: libvirt.libvirtError) -> LibvirtError:
    return failure(conn, doing, exc, "Is the node's libvirtd running, with room at that path?")
