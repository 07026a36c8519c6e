# nestlab image build, first logon: generalize this installation and power off.
# nestlab waits for the power-off; the disk is then the base image. Sysprep
# removes the machine's identity, so every L1 cloned from it gets its own at
# its first boot (computer name, SID, Administrator password).
$ErrorActionPreference = 'Stop'

# Keep WinRM shut in the base image. Windows Server 2016 runs WinRM by default, so an
# L1 cloned from this image would answer it before oobeSystem has set the L1's own
# password. The L1's first-boot script (winrm.ps1) opens it as its last step. As
# StefanScherer/packer-windows' disable-winrm.ps1: the service stopped and disabled,
# and a firewall rule that blocks 5985 (a block rule wins over allow rules, so WinRM
# stays shut even if something starts it). winrm.ps1 removes the rule.
Stop-Service -Name WinRM -Force
Set-Service -Name WinRM -StartupType Disabled
if (-not (Get-NetFirewallRule -Name 'nestlab-winrm-block' -ErrorAction SilentlyContinue)) {
    New-NetFirewallRule -Name 'nestlab-winrm-block' -DisplayName 'nestlab: WinRM shut until first boot is done' `
        -Direction Inbound -Protocol TCP -LocalPort 5985 -Action Block -Profile Any | Out-Null
}

$sysprep = Join-Path $env:SystemRoot 'System32\Sysprep\sysprep.exe'
& $sysprep /generalize /oobe /shutdown /quiet
