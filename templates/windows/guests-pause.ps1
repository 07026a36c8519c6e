# Before a baseline or a snapshot with memory: the lab's running L2 VMs paused
# (Suspend-VM), their memory kept in the L1's, so that saving the L1 keeps them as
# they are. Answers the names it paused.
param([Parameter(Mandatory)] [string[]] $Names)
$ErrorActionPreference = 'Stop'
$paused = @()
foreach ($vm in @(Get-VM -Name $Names -ErrorAction SilentlyContinue | Where-Object { $_.State -eq 'Running' })) {
    Suspend-VM -Name $vm.Name
    $paused += $vm.Name
}
[pscustomobject]@{ paused = $paused } | ConvertTo-Json -Compress
