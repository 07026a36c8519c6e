# On `nestlab down`: stop and remove the lab's L2 VMs in this L1 (L2s first).
param([Parameter(Mandatory)] [string[]] $Names)
foreach ($name in $Names) {
    $vm = Get-VM -Name $name -ErrorAction SilentlyContinue
    if ($vm) {
        Stop-VM -Name $name -TurnOff -Force -ErrorAction SilentlyContinue
        Remove-VM -Name $name -Force
    }
}
