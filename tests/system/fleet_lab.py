"""What the fleet's no-boot test does with nestlab's own library in the controller
namespace, where a command runs (``python -m tests.system.fleet_lab WHAT ARGS``):

- ``define LABFILE``: every seat placed, recorded and planned as `up` does it, then its
  networks and L1 domains defined (not started) on its node;
- ``push URI FILE``: the file copied to the node (printed: copied or not);
- ``banner URI HOST PORT``: the first line a TCP service on the node's side answers,
  through the node's SSH (how guests on a node are reached).
"""

from __future__ import annotations

import sys
from pathlib import Path

from nestlab.commands.context import LabContext
from nestlab.commands.nodes import placement
from nestlab.commands.up import lab_hash
from nestlab.drivers import driver_for
from nestlab.host.check import check_host
from nestlab.host.nodefacts import read_facts_over_ssh
from nestlab.lab.labfile import load_lab
from nestlab.lab.seats import seat_labs
from nestlab.plan import make_plan
from nestlab.render import render_network_xml
from nestlab.state.keys import ensure_lab_key
from nestlab.state.paths import data_root, lab_dir
from nestlab.state.record import LabRecord, claim_lab_dir, save_plan, save_record
from nestlab.transport.node import open_stream
from nestlab.virt import objects, volumes


def define(lab_file: Path) -> None:
    lab = load_lab(lab_file)
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
            for net in plan.networks:
                conn.networkDefineXML(render_network_xml(plan, net))
            for host in plan.hosts:
                objects.ensure_domain(conn, plan.lab, host.domain_name,
                                      driver_for(ctx, host).domain_xml(host))
        finally:
            conn.close()
        print(seat.name, node.name, plan.accel)


def push(uri: str, path: Path) -> None:
    from nestlab.virt.connection import connect

    conn = connect(uri)
    try:
        print("copied" if volumes.push_file(conn, path) else "present")
    finally:
        conn.close()


def banner(uri: str, host: str, port: int) -> None:
    stream = open_stream(uri, None, host, port, 10)
    try:
        print(stream.recv(256).decode(errors="replace").splitlines()[0])
    finally:
        stream.close()


if __name__ == "__main__":
    what, *args = sys.argv[1:]
    if what == "define":
        define(Path(args[0]))
    elif what == "push":
        push(args[0], Path(args[1]))
    else:
        banner(args[0], args[1], int(args[2]))
