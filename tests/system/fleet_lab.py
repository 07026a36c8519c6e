"""What the fleet's no-boot test does with nestlab's own library in the controller
namespace, where a command runs (``python -m tests.system.fleet_lab WHAT ARGS``):

- ``define LABFILE [NODE...]``: every seat placed, recorded and planned as `up` does
  it; for a seat on one of the NODEs, up's own steps that make its disk and copy the
  base image and the L1's files to the node (stand-in images: ``tests.fakes.lab``);
  then its networks and L1 domains defined (not started) on its node;
- ``push URI FILE [THREADS]``: the file copied to the node, from THREADS threads at
  once (printed: copied or present, for each);
- ``banner URI HOST PORT``: the first line a TCP service on the node's side answers,
  through the node's SSH (how guests on a node are reached).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import libvirt

from nestlab.build.images import BuiltImage
from nestlab.commands.context import LabContext
from nestlab.commands.nodes import placement
from nestlab.commands.up import l0_steps, l1_steps, lab_hash
from nestlab.drivers import driver_for
from nestlab.drivers.base import NotConnected
from nestlab.host.check import check_host
from nestlab.host.nodefacts import read_facts_over_ssh
from nestlab.lab.labfile import load_lab
from nestlab.lab.seats import seat_labs
from nestlab.plan import make_plan
from nestlab.progress import Reporter
from nestlab.render import render_network_xml
from nestlab.state.keys import ensure_lab_key
from nestlab.state.paths import data_root, lab_dir
from nestlab.state.record import LabRecord, claim_lab_dir, save_plan, save_record
from nestlab.steps import Step, run_steps
from nestlab.transport.node import open_stream
from nestlab.virt import objects, volumes
from tests.fakes.lab import fake_images


def define(lab_file: Path, copy_to: list[str]) -> None:
    lab = load_lab(lab_file)
    if copy_to:
        fake_images()
    labs = seat_labs(lab)
    placed = placement(labs, lab.nodes)
    for seat in labs:
        node = placed[seat.name]
        decision = check_host(read_facts_over_ssh(node.uri, data_root()), seat).decide(seat.name)
        folder = lab_dir(seat.name)
        claim_lab_dir(folder, seat.name)
        record = LabRecord(seat.name, str(lab_file), node.uri, False, None, node=node.name)
        save_record(folder, record)
        plan = make_plan(seat, decision, folder, ensure_lab_key(folder))
        save_plan(folder, plan, lab_hash(seat))
        ctx = LabContext(folder, record, plan)
        conn = ctx.libvirt()
        try:
            if node.name in copy_to:
                run_steps(_copy_steps(ctx, conn), Reporter(seat.name, folder, "up",
                                                            show=False))
            for net in plan.networks:
                conn.networkDefineXML(render_network_xml(plan, net))
            for host in plan.hosts:
                objects.ensure_domain(conn, plan.lab, host.domain_name,
                                      driver_for(ctx, host).domain_xml(host))
        finally:
            conn.close()
        print(seat.name, node.name, plan.accel)


def _copy_steps(ctx: LabContext, conn: libvirt.virConnect) -> list[Step]:
    """Up's steps for the images, the L1s' disks and the copies on the node; nothing that
    starts a network or a domain."""
    images: dict[str, BuiltImage] = {}
    steps = [s for s in l0_steps(ctx, conn, images, _quiet) if s.name.startswith("image ")]
    for host in ctx.plan.hosts:
        steps += [s for s in l1_steps(ctx, conn, host, images, NotConnected(host.name), [],
                                      _quiet, threading.Event())
                  if s.name == "disk" or s.name.startswith("files on node")]
    return steps


def _quiet(_guest: str, _message: str) -> None:
    pass


def push(uri: str, path: Path, at_once: int = 1) -> None:
    """Copy ``path`` to the node from ``at_once`` threads, each with its connection, as
    seats on one node copy its base image (printed: each copied or present, sorted)."""
    from concurrent.futures import ThreadPoolExecutor

    from nestlab.virt.connection import connect

    def one(_index: int) -> str:
        conn = connect(uri)
        try:
            return "copied" if volumes.push_file(conn, path) else "present"
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=at_once) as pool:
        print("\n".join(sorted(pool.map(one, range(at_once)))))


def banner(uri: str, host: str, port: int) -> None:
    stream = open_stream(uri, None, host, port, 10)
    try:
        print(stream.recv(256).decode(errors="replace").splitlines()[0])
    finally:
        stream.close()


if __name__ == "__main__":
    what, *args = sys.argv[1:]
    if what == "define":
        define(Path(args[0]), args[1:])
    elif what == "push":
        push(args[0], Path(args[1]), int(args[2]) if len(args) > 2 else 1)
    else:
        banner(args[0], args[1], int(args[2]))
