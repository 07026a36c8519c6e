# One L2 guest prime under Hyper-V, made and started only if needed (it prints
# which): a Generation 1 VM (BIOS) booting the prime's ISO, with an empty data disk.
# Bridged L2s need MAC address spoofing on their adapter (pitfall P9).
param(
    [Parameter(Mandatory)] [string] $Name,
    [Parameter(Mandatory)] [long] $MemoryBytes,
    [Parameter(Mandatory)] [int] $Cpus,
    [Parameter(Mandatory)] [long] $DiskBytes,
    [Parameter(Mandatory)] [string] $Folder,
    [Parameter(Mandatory)] [string] $IsoPath,
    [Parameter(Mandatory)] [string] $Switch,
    [Parameter(Mandatory)] [string] $MacAddress,
    [switch] $MacSpoofing
)
$ErrorActionPreference = 'Stop'
$vm = Get-VM -Name $Name -ErrorAction SilentlyContinue
$created = $false
if (-not $vm) {
    New-Item -ItemType Directory -Path $Folder -Force | Out-Null
    $vhd = Join-Path $Folder "$Name.vhdx"
    $vm = New-VM -Name $Name -Generation 1 -MemoryStartupBytes $MemoryBytes -Path $Folder `
        -NewVHDPath $vhd -NewVHDSizeBytes $DiskBytes -SwitchName $Switch
    Set-VMProcessor -VMName $Name -Count $Cpus
    Set-VMMemory -VMName $Name -DynamicMemoryEnabled $false
    Set-VMDvdDrive -VMName $Name -Path $IsoPath
    Set-VMBios -VMName $Name -StartupOrder @('CD', 'IDE', 'LegacyNetworkAdapter', 'Floppy')
    Set-VMNetworkAdapter -VMName $Name -StaticMacAddress $MacAddress
    if ($MacSpoofing) {
        Set-VMNetworkAdapter -VMName $Name -MacAddressSpoofing On
    }
    $created = $true
}
$started = $false
if ($vm.State -ne 'Running') {
    Start-VM -Name $Name
    $started = $true
}
[pscustomobject]@{ created = $created; started = $started } | ConvertTo-Json -Compress
