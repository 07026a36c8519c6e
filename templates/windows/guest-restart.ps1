# `nestlab restart`: one L2 VM turned off (when it runs) and started again, a new boot
# of the same disk. Restart-VM -Force is Hyper-V's reset; a VM that is not running
# (Off, Saved, Paused) is turned off, then started.
param([Parameter(Mandatory)] [string] $Name)
$ErrorActionPreference = 'Stop'
$vm = Get-VM -Name $Name
if ($vm.State -eq 'Running') {
    Restart-VM -Name $Name -Force
} else {
    if ($vm.State -ne 'Off') {
        Stop-VM -Name $Name -TurnOff -Force
    }
    Start-VM -Name $Name
}
[pscustomobject]@{ state = [string](Get-VM -Name $Name).State } | ConvertTo-Json -Compress
