# nestlab image build, first logon: generalize this installation and power off.
# nestlab waits for the power-off; the disk is then the base image. Sysprep
# removes the machine's identity, so every L1 cloned from it gets its own at
# its first boot (computer name, SID, Administrator password).
$ErrorActionPreference = 'Stop'

# The build domain has no network: its COM1, logged to a file on L0, is how
# nestlab learns the step and, when sysprep fails, why (build/setupwatch.py).
# Never fatal: without the port nestlab still waits for the power-off.
function Send-Marker([string]$Text) {
    try {
        $port = New-Object System.IO.Ports.SerialPort 'COM1', 115200
        $port.Open()
        $port.WriteLine("nestlab-build: $Text")
        $port.Close()
    } catch { }
}

Send-Marker 'first-logon'

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

try {
    # Proven Server 2016 recipes stop the Start menu's tile service first: sysprep can
    # fail on the state it holds.
    Stop-Service -Name tiledatamodelsvc -Force -ErrorAction SilentlyContinue
    Send-Marker 'sysprep-start'
    # sysprep.exe is a GUI program: Start-Process -Wait, or PowerShell would not wait.
    # /quit, not /shutdown: its outcome is checked here, then this script powers off.
    $sysprep = Join-Path $env:SystemRoot 'System32\Sysprep\sysprep.exe'
    $run = Start-Process -FilePath $sysprep -ArgumentList '/generalize', '/oobe', '/quit', '/quiet' -Wait -PassThru
    $state = (Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Setup\State').ImageState
    if ($state -ne 'IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE') {
        throw "sysprep exited $($run.ExitCode) and left the image state $state"
    }
} catch {
    $log = Join-Path $env:SystemRoot 'System32\Sysprep\Panther\setuperr.log'
    if (Test-Path $log) {
        Get-Content -Path $log -Tail 8 | ForEach-Object { Send-Marker "setuperr: $_" }
    }
    Send-Marker "sysprep-failed: $($_.Exception.Message)"
    exit 1
}
Send-Marker 'sysprep-done'
Stop-Computer -Force
