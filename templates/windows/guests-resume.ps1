# After the L1 was restored from its saved memory: its clock set to L0's now (it stood
# still while saved), then the L2 VMs paused before the save resumed (Resume-VM). Their
# clocks follow the L1's through Hyper-V's time synchronization service.
param([Parameter(Mandatory)] [long] $Now, [string[]] $Names = @())
$ErrorActionPreference = 'Stop'
Set-Date -Date ([DateTimeOffset]::FromUnixTimeSeconds($Now).LocalDateTime) | Out-Null
$resumed = @()
if ($Names.Count) {
    foreach ($vm in @(Get-VM -Name $Names -ErrorAction SilentlyContinue | Where-Object { $_.State -eq 'Paused' })) {
        Resume-VM -Name $vm.Name
        $resumed += $vm.Name
    }
}
[pscustomobject]@{ resumed = $resumed } | ConvertTo-Json -Compress
