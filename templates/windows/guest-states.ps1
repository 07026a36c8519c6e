# The state of each of the lab's L2 VMs in this L1 (for `nestlab status`).
param([Parameter(Mandatory)] [string[]] $Names)
$states = @{}
foreach ($name in $Names) {
    $vm = Get-VM -Name $name -ErrorAction SilentlyContinue
    $states[$name] = if ($vm) { [string]$vm.State } else { 'absent' }
}
[pscustomobject]$states | ConvertTo-Json -Compress
