"""FAKE Windows L1 for tests: no Windows can run on the project's machines.

``FakeHyperVL1`` stands in for a WinRM session with a Windows Server 2016 L1.
It does not run PowerShell: it recognises nestlab's scripts by name, checks
that they received the parameters their param() blocks declare, and applies
their effect to a small model of the L1 (role state, reboots, switches, NATs,
VMs, folders, files), answering with the JSON the real scripts print. It can
be told to lose the session at a given script, once, as a crash or a reboot
would.

Which real behaviour each part copies, and from where:

- Scripts: a script that does not parse is refused, as PowerShell refuses
  it; the parameters come from each script's own param() block, parsed with
  tree-sitter's PowerShell grammar (tests/powershell.py); each answer has
  exactly the keys of the object the script pipes to ConvertTo-Json (pinned in
  tests/unit/test_hyperv_fake.py).
- ``put``: pypsrp's ``Client.copy`` (pypsrp/client.py and
  pypsrp/pwsh_scripts/copy.ps1, 0.8 and 0.9) writes the bytes to a temporary
  file from ``[System.IO.Path]::GetTempFileName()``, then
  ``[System.IO.File]::Delete`` and ``::Move`` put it at the destination.
  Nothing creates a folder: when the destination's folder is missing, .NET
  throws "Could not find a part of the path", which pypsrp raises as
  ``WinRMError("Failed to copy file: ...")``; ``WinRMTransport.put`` turns it
  into a ``TransportError`` naming the guest and the file (pinned in
  tests/unit/test_hyperv_fake.py), which is what this fake raises.
- Folders: a fresh L1 has its system folders; only scripts that run
  ``New-Item -ItemType Directory`` make one (guest-folder.ps1, and guest-vm.ps1
  for a VM it creates). Windows paths are case-insensitive.
- Restart: ``Restart-Computer -Force`` returns before Windows goes down, so a
  call or two still sees the old boot before the session drops.
- The Hyper-V role: ``Install-WindowsFeature`` leaves it InstallPending, and it
  takes restarts (two on Server 2016 in a KVM guest) before it is Installed and
  the hypervisor runs.
- The hypervisor: the L1 is a KVM guest, so ``HypervisorPresent`` is True from
  the first boot, role or not (it is the CPUID "hypervisor present" bit, which
  KVM sets). At each boot with the role Installed the hypervisor is launched:
  it starts (System event 1 of Microsoft-Windows-Hyper-V-Hypervisor, "Hypervisor
  successfully started.") only when the processor really has VMX and SLAT;
  otherwise that boot logs the launch failure instead (event 41 "Hypervisor
  launch failed; Either VMX not present or not enabled in BIOS.", event 59
  "... Second Level Address Translation is required ...", hvservice.sys's
  message table in libyal/winevt-kb). ``vmms`` runs whenever the role is
  Installed, hypervisor or not (Hyper-V then refuses to start VMs: "the
  hypervisor is not running"), and may be StartPending for a while after a
  boot. What Win32_Processor reports (``wmi_vmx``/``wmi_slat``) can differ from
  what the processor has: whether Windows in a KVM guest reports these flags is
  unverified. All of this is modelled, not observed on a real L1.
- An external switch (``New-VMSwitch -NetAdapterName``) takes the L1's own
  adapter: its address moves to the switch's vEthernet adapter and the L1 is off
  the network for a few seconds, so the WinRM session is lost, after the switch
  is made: during the script, or (``switch_answers_before_drop``) at the next
  call; every call fails until ``reconnect`` waits for the network to come
  back. No other switch drops the session.
  [inferred from the host adapter being rebound: blogs.technet.com/b/mrsnrub
  "Hyper-V Virtual Networks", 2009; not observed on a real L1]
- A VM: ``New-VM -NewVHDPath`` makes its disk (a file in its folder), which
  ``Remove-VM`` leaves behind; a new boot (``Restart-VM``, ``Start-VM``) has no
  heartbeat until its integration services start again. A script that ends in
  an error (``$ErrorActionPreference = 'Stop'``, e.g. ``Get-VM`` of a VM that
  does not exist) fails with PowerShell's message, as WinRM reports it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nestlab.transport.base import CommandResult, TransportError
from tests.powershell import script_parameters, syntax_errors


@dataclass
class FakeVM:
    name: str
    parameters: dict[str, Any]
    state: str = "Running"
    polls: int = 0
    boots: int = 0


class ScriptError(Exception):
    """What a script that stops on an error writes to its error stream."""


@dataclass
class FakeHyperVL1:
    name: str = "hv1"
    vmx: bool = True
    slat: bool = True
    """What the L1's processor really has (host-passthrough with nested KVM on L0)."""
    wmi_vmx: bool | None = None
    wmi_slat: bool | None = None
    """What Win32_Processor reports, when it differs from ``vmx``/``slat``."""
    role: str = "Available"
    reboots_to_finish: int = 2
    """Hyper-V's role takes this many restarts before the hypervisor runs."""
    boot: int = 1
    answers_after_restart: int = 1
    """How many calls still see the old boot after Restart-Computer (it goes down slowly)."""
    heartbeat_after_polls: int = 2
    vmms_pending_polls: int = 0
    """How many hyperv-state calls after a boot still see vmms StartPending."""
    launches: dict[int, str] = field(default_factory=dict)
    """Boot -> how its hypervisor launch went: "" started, else the failure's event text."""
    session_lost: bool = False
    """The L1 is off the network: every call fails until ``reconnect``."""
    switch_answers_before_drop: bool = False
    """Making an external switch answers, and the session is lost at the next call."""
    fail_once_at: str | None = None
    calls: list[str] = field(default_factory=list)
    answers: list[tuple[str, dict[str, Any], Any]] = field(default_factory=list)
    """(script, parameters, the value it printed as JSON) for every script that answered."""
    switches: dict[str, dict[str, Any]] = field(default_factory=dict)
    nats: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    vms: dict[str, FakeVM] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    """Path (lower case) -> SHA-256 in upper case, as Get-FileHash prints it."""
    folders: set[str] = field(default_factory=lambda: {
        "c:", "c:\\windows", "c:\\windows\\temp", "c:\\users",
        "c:\\users\\administrator"})
    """Folders that exist (lower case, no trailing backslash)."""
    creations: list[str] = field(default_factory=list)
    ignores_shutdown: set[str] = field(default_factory=set)
    """L2 VMs that do not shut down when Stop-VM asks (their guest runs no service)."""
    clock: int | None = None
    """What the last Set-Date set the L1's clock to (Unix seconds)."""
    restarts: int = 0
    reconnects: int = 0
    _going_down: int = 0
    _vmms_polls: int = 0

    # -- the PowerShellSession protocol ----------------------------------------------
    def run_script(self, name: str, script: str,
                   parameters: dict[str, Any] | None = None) -> CommandResult:
        parameters = parameters or {}
        self.calls.append(name)
        self._check_script(name, script, parameters)
        if self.session_lost:
            raise TransportError(f"{self.name}: lost the WinRM session during {name}: "
                                 "the L1 is off the network (fake)")
        if self.fail_once_at == name:
            self.fail_once_at = None
            raise TransportError(f"{self.name}: lost the WinRM session during {name} (fake)")
        handler = getattr(self, "_" + name.replace("-", "_"))
        try:
            value = handler(**parameters)
        except ScriptError as exc:
            return CommandResult(name, 1, "", str(exc))
        self.answers.append((name, parameters, value))
        stdout = json.dumps(value) if value is not None else ""
        return CommandResult(name, 0, stdout, "")

    def put(self, local: Path, remote: str) -> None:
        """pypsrp's copy: a temporary file moved to ``remote``, whose folder must exist."""
        self.calls.append(f"put {remote}")
        if _folder_of(remote) not in self.folders:
            raise TransportError(
                f"{self.name}: cannot copy {local.name} to {remote}: WinRMError: Failed to copy "
                'file: Exception calling "Delete" with "1" argument(s): "Could not find a part '
                f"of the path '{remote}'.\"")
        self.files[_key(remote)] = hashlib.sha256(local.read_bytes()).hexdigest().upper()

    def reconnect(self, timeout: float) -> None:
        """WinRMTransport.reconnect waits until WinRM answers: the network is back."""
        self.reconnects += 1
        self.session_lost = False

    # -- what the Windows driver also asks of a session (WinRMTransport) ---------------
    def wait_until_reachable(self, timeout: float, waiting: Any = None,
                             cancel: Any = None) -> None:
        """WinRM answers at once: this fake L1's first boot is over (tests/fakes/firstboot.py
        fakes the first boot, through the real WinRMTransport)."""

    def close(self) -> None:
        pass

    # -- the model -------------------------------------------------------------------
    @staticmethod
    def _check_script(name: str, script: str, parameters: dict[str, Any]) -> None:
        """The script must parse (PowerShell would refuse it), and its real param() block
        must accept what nestlab passes."""
        errors = syntax_errors(script)
        assert not errors, f"{name}.ps1 does not parse: {errors}"
        declared = script_parameters(script)
        mandatory = {p for p, required in declared.items() if required}
        unknown = set(parameters) - set(declared)
        assert not unknown, f"{name}.ps1 declares no parameter(s) {unknown}"
        missing = mandatory - set(parameters)
        assert not missing, f"{name}.ps1 needs {missing}"

    def _answering_boot(self) -> int:
        if self._going_down:
            self._going_down -= 1
            return self.boot - 1
        return self.boot

    def _hyperv_state(self) -> dict[str, Any]:
        boot = self._answering_boot()
        launch = self.launches.get(boot)
        return {"role": self.role, "hypervisor_started": launch == "",
                "hypervisor_error": launch or "", "vmms": self._vmms(boot),
                "hypervisor_present": True,  # KVM's CPUID bit: true in any KVM guest
                "boot_time": f"boot-{boot}"}

    def _vmms(self, boot: int) -> str:
        if self.role != "Installed":
            return "absent"
        if boot == self.boot:
            self._vmms_polls += 1
            if self._vmms_polls <= self.vmms_pending_polls:
                return "StartPending"
        return "Running"

    def _preflight(self) -> dict[str, Any]:
        return {"vmx": self.vmx if self.wmi_vmx is None else self.wmi_vmx,
                "slat": self.slat if self.wmi_slat is None else self.wmi_slat}

    def _install_hyperv(self) -> dict[str, Any]:
        if self.role == "Available":
            self.role = "InstallPending"
            self.creations.append("role")
        return {"role": self.role, "restart_needed": self.role != "Installed"}

    def _restart(self) -> None:
        self.restarts += 1
        self.boot += 1
        self._going_down = self.answers_after_restart
        self._vmms_polls = 0
        if self.role == "InstallPending":
            self.reboots_to_finish -= 1
            if self.reboots_to_finish <= 0:
                self.role = "Installed"
        if self.role == "Installed":
            self.launches[self.boot] = self._launch()
        raise TransportError(f"{self.name}: the session dropped (fake restart)")

    def _launch(self) -> str:
        """The hypervisor's launch at a boot: "" when it started, else the failure event."""
        if not self.vmx:
            return "Hypervisor launch failed; Either VMX not present or not enabled in BIOS."
        if not self.slat:
            return ("Hypervisor launch failed; Second Level Address Translation is required "
                    "to launch the hypervisor.")
        return ""

    def _require_hyperv(self) -> None:
        assert self.role == "Installed", "Hyper-V cmdlets used before the role runs"

    def _guest_network(self, Name: str, Mode: str, HostAddress: str | None = None,
                       PrefixLength: int | None = None,
                       Prefix: str | None = None) -> dict[str, Any]:
        self._require_hyperv()
        created = []
        if Name not in self.switches:
            self.switches[Name] = {"mode": Mode}
            self.creations.append(f"switch {Name}")
            created.append("switch")
            if Mode == "bridged":  # New-VMSwitch -NetAdapterName took the L1's adapter
                self.session_lost = True
                if not self.switch_answers_before_drop:
                    raise TransportError(f"{self.name}: lost the WinRM session during "
                                         "guest-network: the L1 is off the network (fake)")
        if Mode != "bridged" and HostAddress not in self.addresses:
            self.addresses.append(str(HostAddress))
            self.creations.append(f"address {HostAddress}/{PrefixLength}")
            created.append("address")
        if Mode == "nat" and Name not in self.nats:
            self.nats.append(Name)
            self.creations.append(f"nat {Prefix}")
            created.append("nat")
        return {"created": created}

    def _file_hash(self, Path: str) -> dict[str, Any]:
        return {"sha256": self.files.get(_key(Path))}

    def _make_folder(self, path: str) -> bool:
        """New-Item -ItemType Directory -Force: the folder and its parents."""
        if _key(path) in self.folders:
            return False
        parts = _key(path).split("\\")
        for end in range(1, len(parts) + 1):
            self.folders.add("\\".join(parts[:end]))
        self.creations.append(f"folder {path}")
        return True

    def _guest_folder(self, Path: str) -> dict[str, Any]:
        return {"created": self._make_folder(Path)}

    def _guest_vm(self, **parameters: Any) -> dict[str, Any]:
        self._require_hyperv()
        name = parameters["Name"]
        assert _key(parameters["IsoPath"]) in self.files, "VM started before its ISO was copied"
        assert parameters["Switch"] in self.switches, "VM attached to a missing switch"
        created = name not in self.vms
        if created:
            self._make_folder(parameters["Folder"])
            self.vms[name] = FakeVM(name, parameters, state="Off")
            self.files[_key(self._vhd(name, parameters["Folder"]))] = "VHDX"
            self.creations.append(f"vm {name}")
        started = self.vms[name].state != "Running"
        if started:
            self._boot_vm(self.vms[name])
        return {"created": created, "started": started}

    @staticmethod
    def _vhd(name: str, folder: str) -> str:
        return f"{folder}\\{name}.vhdx"

    @staticmethod
    def _boot_vm(vm: FakeVM) -> None:
        vm.state = "Running"
        vm.boots += 1
        vm.polls = 0  # no heartbeat until the new boot's integration services run

    def _guests_stop(self, Names: list[str], Seconds: int = 120) -> dict[str, Any]:
        """Stop-VM asks each running VM's shutdown service; one in ``ignores_shutdown``
        (no integration services running) is turned off when the time is up."""
        turned_off = []
        for name in Names:
            vm = self.vms.get(name)
            if vm is None or vm.state == "Off":
                continue
            if name in self.ignores_shutdown:
                turned_off.append(name)
            vm.state = "Off"
        return {"turnedOff": turned_off}

    def _guests_pause(self, Names: list[str]) -> dict[str, Any]:
        """Suspend-VM of the running ones: Paused, their memory kept."""
        paused = [n for n in Names if n in self.vms and self.vms[n].state == "Running"]
        for name in paused:
            self.vms[name].state = "Paused"
        return {"paused": paused}

    def _guests_resume(self, Now: int, Names: list[str]) -> dict[str, Any]:
        """Set-Date to ``Now``, then Resume-VM of the paused ones: running as they were (no
        new boot: their heartbeat goes on)."""
        self.clock = Now
        resumed = [n for n in Names if n in self.vms and self.vms[n].state == "Paused"]
        for name in resumed:
            self.vms[name].state = "Running"
        return {"resumed": resumed}

    def _guest_restart(self, Name: str) -> dict[str, Any]:
        vm = self.vms.get(Name)
        if vm is None:
            raise ScriptError(f"Get-VM : Hyper-V was unable to find a virtual machine with "
                              f"name \"{Name}\".")
        self._boot_vm(vm)
        return {"state": vm.state}

    def _guest_remove(self, Name: str, Folder: str) -> dict[str, Any]:
        removed = []
        if self.vms.pop(Name, None) is not None:
            removed.append("VM")
        if self.files.pop(_key(self._vhd(Name, Folder)), None) is not None:
            removed.append("disk")
        return {"removed": removed}

    def _guest_proof(self, Name: str, Address: str) -> dict[str, Any]:
        vm = self.vms.get(Name)
        if vm is None:
            return {"state": "", "heartbeat": "", "ssh": False}
        vm.polls += 1
        ready = vm.polls > self.heartbeat_after_polls
        return {"state": vm.state, "heartbeat": "OK" if ready else "No Contact", "ssh": ready}

    def _guest_states(self, Names: list[str]) -> dict[str, str]:
        return {n: self.vms[n].state if n in self.vms else "absent" for n in Names}

    def _remove_guests(self, Names: list[str]) -> None:
        for name in Names:
            self.vms.pop(name, None)



def _key(path: str) -> str:
    """How the fake compares Windows paths: case-insensitive, no trailing backslash."""
    return path.rstrip("\\").lower()


def _folder_of(path: str) -> str:
    return _key(path).rpartition("\\")[0]
