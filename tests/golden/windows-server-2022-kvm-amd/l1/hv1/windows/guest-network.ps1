# The L2 network inside a Windows L1, made only if missing (it prints what it made):
#   internal/nat: an internal switch with the host's address on it, and for
#   nat a NetNat (one per host; it gives no DHCP, so L2s get static addresses);
#   bridged: an external switch on the L1's first connected adapter. Making it
#   takes that adapter from the L1 (its address moves to the switch's new
#   vEthernet adapter), so the L1 is off the network for a few seconds and the
#   WinRM session running this script is lost; nestlab reconnects and runs this
#   again to confirm the switch (provision/windows.py).
param(
    [Parameter(Mandatory)] [string] $Name,
    [Parameter(Mandatory)] [ValidateSet('nat', 'internal', 'bridged')] [string] $Mode,
    [string] $HostAddress,
    [int] $PrefixLength,
    [string] $Prefix
)
$ErrorActionPreference = 'Stop'
$created = @()
if (-not (Get-VMSwitch -Name $Name -ErrorAction SilentlyContinue)) {
    if ($Mode -eq 'bridged') {
        $adapter = Get-NetAdapter -Physical | Where-Object { $_.Status -eq 'Up' } |
            Select-Object -First 1
        if (-not $adapter) { throw 'no connected network adapter to bridge the L2s onto' }
        New-VMSwitch -Name $Name -NetAdapterName $adapter.Name -AllowManagementOS $true | Out-Null
    } else {
        New-VMSwitch -Name $Name -SwitchType Internal | Out-Null
    }
    $created += 'switch'
}
if ($Mode -ne 'bridged') {
    $alias = "vEthernet ($Name)"
    $present = Get-NetIPAddress -InterfaceAlias $alias -AddressFamily IPv4 -ErrorAction SilentlyContinue |
        Where-Object { $_.IPAddress -eq $HostAddress }
    if (-not $present) {
        New-NetIPAddress -InterfaceAlias $alias -IPAddress $HostAddress -PrefixLength $PrefixLength | Out-Null
        $created += 'address'
    }
}
if ($Mode -eq 'nat' -and -not (Get-NetNat -Name $Name -ErrorAction SilentlyContinue)) {
    New-NetNat -Name $Name -InternalIPInterfaceAddressPrefix $Prefix | Out-Null
    $created += 'nat'
}
[pscustomobject]@{ created = $created } | ConvertTo-Json -Compress
