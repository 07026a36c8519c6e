"""Checks of this lab, run by `make verify` (pytest with nestlab's plugin and testinfra).

`l1_host` runs a test once per L1 and `l2_host` once per L2 (an L2 is reached
through its L1); both are testinfra hosts: https://testinfra.readthedocs.io
"""


def test_the_l1_can_run_virtual_machines(l1_host):
    assert l1_host.file("/dev/kvm").exists
    assert l1_host.service("libvirtd").is_running


def test_the_l2_has_its_address_and_a_default_route(l2_host):
    assert l2_host.run("ip -4 -o addr show scope global").stdout.strip()
    assert "default via" in l2_host.check_output("ip route")
