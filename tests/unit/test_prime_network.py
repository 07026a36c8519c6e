"""The guest prime's network script (images/prime/network.sh), run by a POSIX shell with a
folder standing in for /sys/class/net and shell functions standing in for ip and udhcpc.

Under Hyper-V the card is offered over VMBus after /init has loaded hv_netvsc; a card
that appears late must still get its address. The system tests boot the real init.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import images

NETWORK_SH = Path(images.__file__).parent / "prime" / "network.sh"

# ip and udhcpc only say what they were asked to do (udhcpc on fd 3: the script sends
# its output to /dev/null).
STAND_INS = """
ip() { echo "ip $*"; }
udhcpc() { echo "udhcpc $*" >&3; }
hostname() { echo prime1; }
"""


def run_network(net: Path, static_ip: str = "", static_gw: str = "",
                appears_after: float | None = None, bound_tenths: int | None = None) -> str:
    """Source network.sh and run prime_network; the card's folder is made after
    ``appears_after`` seconds (never, when None)."""
    (net / "lo").mkdir()
    call = (f'prime_wait_for_interface "$1" {bound_tenths}' if bound_tenths is not None
            else 'prime_network "$1" "$2" "$3" 3>&1')
    script = f'{STAND_INS}\n. "$0"\n{call}\necho "exit $?"'
    timer = threading.Timer(appears_after or 0.0, lambda: (net / "eth0").mkdir())
    if appears_after is not None:
        timer.start()
    try:
        run = subprocess.run(["sh", "-c", script, str(NETWORK_SH), str(net), static_ip,
                              static_gw], capture_output=True, text=True, timeout=60)
    finally:
        timer.cancel()
    assert run.stderr == ""
    return run.stdout


def test_a_card_that_appears_late_still_gets_its_static_address(tmp_path: Path) -> None:
    out = run_network(tmp_path, "192.168.100.10/24", "192.168.100.1", appears_after=0.7)
    lines = out.splitlines()
    assert lines[0] == "ip link set lo up"
    assert lines[1].startswith("nestlab-prime: network interface after ")
    assert lines[2:] == ["ip link set eth0 up",
                         "ip addr add 192.168.100.10/24 dev eth0",
                         "ip route replace default via 192.168.100.1 dev eth0",
                         "nestlab-prime: eth0 192.168.100.10/24 (static)",
                         "exit 0"]


def test_a_card_that_appears_late_still_asks_for_dhcp(tmp_path: Path) -> None:
    out = run_network(tmp_path, appears_after=0.5)
    assert "ip link set eth0 up" in out.splitlines()
    assert "udhcpc -b -q -i eth0 -s /etc/udhcpc.script -x hostname:prime1" in out.splitlines()


def test_a_card_present_at_once_is_not_waited_for(tmp_path: Path) -> None:
    (tmp_path / "eth0").mkdir()
    out = run_network(tmp_path, "10.0.0.5/24")
    assert "network interface after" not in out
    assert "nestlab-prime: eth0 10.0.0.5/24 (static)" in out


def test_no_card_at_all_ends_the_wait_and_says_so(tmp_path: Path) -> None:
    out = run_network(tmp_path, bound_tenths=3)
    assert out.splitlines() == ["nestlab-prime: no network interface after 0 s", "exit 1"]
