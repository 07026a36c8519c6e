"""WinRMTransport: configured for NTLM with encryption; retries, reboots and errors
exercised against a FAKE runspace factory (tests/fakes/runspace.py)."""

from __future__ import annotations

import pytest
import requests
from pypsrp.exceptions import AuthenticationError, WinRMTransportError
from pypsrp.wsman import WSMan

from nestlab.transport import TransportError, Unreachable, transport_class
from nestlab.transport.winrm import FIRST_BOOT_401, WinRMTransport, wsman_options
from tests.fakes.runspace import FakeRunspaceFactory


def transport(factory: FakeRunspaceFactory) -> WinRMTransport:
    return WinRMTransport("hv1", "10.78.0.10", "Administrator", "pw", factory=factory,
                          sleep=lambda _s: None)


def test_ntlm_with_message_encryption_over_http_and_no_basic() -> None:
    options = wsman_options("Administrator", "pw")
    assert (options["auth"], options["encryption"], options["ssl"], options["port"]) == (
        "ntlm", "always", False, 5985)
    wsman = WSMan("127.0.0.1", **options)  # pypsrp accepts them; nothing is sent
    assert wsman.transport.auth == "ntlm"
    assert wsman.transport.wrap_required  # every message sealed
    assert wsman.transport.endpoint == "http://127.0.0.1:5985/wsman"


def test_registered_as_the_winrm_transport() -> None:
    assert transport_class("winrm") is WinRMTransport


def test_waits_while_the_guest_boots() -> None:
    factory = FakeRunspaceFactory(open_failures=[
        requests.exceptions.ConnectionError("refused"),
        requests.exceptions.ReadTimeout("slow"),
        WinRMTransportError("http", 503, "service unavailable"),
    ])
    heard: list[str] = []
    t = transport(factory)
    t.wait_until_reachable(60, heard.append)
    assert factory.opened == 1
    assert len(heard) == 3 and "ConnectionError" in heard[0]
    t.close()


REFUSALS = [AuthenticationError("bad"), WinRMTransportError("http", 401, "denied")]


@pytest.mark.parametrize("refusal", REFUSALS, ids=["AuthenticationError", "401"])
def test_a_refused_password_at_first_boot_is_waited_out(refusal: Exception) -> None:
    # Windows answers WinRM before oobeSystem has set the L1's password.
    factory = FakeRunspaceFactory(open_failures=[refusal, refusal])
    heard: list[str] = []
    t = transport(factory)
    t.wait_until_reachable(60, heard.append)
    assert factory.opened == 1
    assert heard == [FIRST_BOOT_401] * 2
    assert "refuses the lab's password" in heard[0] and "first boot" in heard[0]
    t.close()


@pytest.mark.parametrize("refusal", REFUSALS, ids=["AuthenticationError", "401"])
def test_refused_until_the_deadline_names_the_credentials(refusal: Exception) -> None:
    factory = FakeRunspaceFactory(open_failures=[refusal] * 3)
    t = transport(factory)
    with pytest.raises(TransportError, match=r"hv1: WinRM refused the lab's Administrator "
                                             r"credentials until the deadline \(0s\)") as refused:
        t.wait_until_reachable(0)
    assert not isinstance(refused.value, Unreachable)  # it answered: not "booting"
    assert refused.value.hint and "`nestlab down`" in refused.value.hint
    t.close()


def test_once_let_in_a_refused_password_fails_at_once() -> None:
    factory = FakeRunspaceFactory()
    t = transport(factory)
    t.wait_until_reachable(60)
    factory.open_failures = [WinRMTransportError("http", 401, "denied"),
                             requests.exceptions.ConnectionError("never tried")]
    with pytest.raises(TransportError, match=r"hv1: WinRM refused the lab's Administrator "
                                             r"credentials$") as refused:
        t.reconnect(600)
    assert not isinstance(refused.value, Unreachable)
    assert len(factory.open_failures) == 1  # no second try
    t.close()


def test_unreachable_names_the_guest_and_the_last_error() -> None:
    factory = FakeRunspaceFactory(open_failures=[requests.exceptions.ConnectionError("no")] * 5)
    t = transport(factory)
    with pytest.raises(Unreachable, match=r"hv1: WinRM: timed out after 0s \(last: "
                                          r"ConnectionError: no\)"):
        t.wait_until_reachable(0)
    t.close()


def test_one_runspace_pool_serves_every_command() -> None:
    factory = FakeRunspaceFactory()
    t = transport(factory)
    for _ in range(3):
        assert t.run(["Get-VM", "-Name", "prime1"]).ok
    assert factory.opened == 1
    assert factory.invoked[0].commands == [("command", "Get-VM"), ("argument", "-Name"),
                                           ("argument", "prime1")]
    t.close()
    assert factory.closed == 1


def test_script_values_go_in_as_parameters() -> None:
    factory = FakeRunspaceFactory(output=['{"a": 1}'])
    t = transport(factory)
    result = t.run_script("guest-vm", "param($Name) Get-VM -Name $Name",
                          {"Name": "x'; Remove-Item C:\\ -Recurse; '"})
    assert result.stdout == '{"a": 1}'
    [ps] = factory.invoked
    assert ps.commands == [("script", "param($Name) Get-VM -Name $Name"),
                           ("parameters", {"Name": "x'; Remove-Item C:\\ -Recurse; '"})]
    t.close()


def test_a_reboot_drops_the_session_and_reconnect_opens_a_new_one() -> None:
    factory = FakeRunspaceFactory(invoke_failures=[requests.exceptions.ConnectionError("reset")])
    t = transport(factory)
    t.wait_until_reachable(10)
    with pytest.raises(TransportError, match="hv1: lost the WinRM session during restart"):
        t.run_script("restart", "Restart-Computer -Force")
    factory.open_failures = [requests.exceptions.ConnectionError("rebooting")] * 2
    t.reconnect(60)
    assert factory.opened == 2
    assert t.run(["hostname"]).ok
    t.close()
