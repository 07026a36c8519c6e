# Before a baseline or a snapshot of the L1's disk: the lab's L2 VMs shut down cleanly.
# Stop-VM (without -TurnOff) asks the guest's shutdown integration service; a VM that
# is not Off within $Seconds is turned off (Stop-VM -TurnOff) and named in the answer.
param([Parameter(Mandatory)] [string[]] $Names, [int] $Seconds = 120)
$ErrorActionPreference = 'Stop'
$running = @(Get-VM -Name $Names -ErrorAction SilentlyContinue | Where-Object { $_.State -ne 'Off' })
$jobs = foreach ($vm in $running) {
    Start-Job -ScriptBlock { param($n) Stop-VM -Name $n -Force } -ArgumentList $vm.Name
}
$deadline = (Get-Date).AddSeconds($Seconds)
while ((Get-Date) -lt $deadline -and
       @(Get-VM -Name $Names -ErrorAction SilentlyContinue | Where-Object { $_.State -ne 'Off' }).Count) {
    Start-Sleep -Seconds 1
}
$turnedOff = @()
foreach ($vm in @(Get-VM -Name $Names -ErrorAction SilentlyContinue | Where-Object { $_.State -ne 'Off' })) {
    Stop-VM -Name $vm.Name -TurnOff -Force
    $turnedOff += $vm.Name
}
$jobs | Remove-Job -Force -ErrorAction SilentlyContinue
[pscustomobject]@{ turnedOff = $turnedOff } | ConvertTo-Json -Compress
