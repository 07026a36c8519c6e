"""Checks of this lab, run by `make verify` (pytest with nestlab's plugin and testinfra).

`l1_host` runs a test once per L1: for a Windows L1, commands are PowerShell over
WinRM. The L2s run under Hyper-V: ask Hyper-V about them through their L1.
"""


def test_the_l1_runs_hyper_v(l1_host):
    assert l1_host.run("(Get-Service -Name vmms).Status").stdout.strip() == "Running"


def test_every_l2_is_running(l2, nestlab_lab):
    state = nestlab_lab.shell(l2.l1, f"(Get-VM -Name '{l2.name}').State").stdout.strip()
    assert state == "Running"
