# `nestlab rebuild`: one L2 VM removed with its virtual disk, so that guest-vm.ps1 makes
# it afresh (New-VM -NewVHDPath will not reuse a disk that is still there). The folder
# and the prime ISO in it stay: the ISO is copied again only when it differs.
param(
    [Parameter(Mandatory)] [string] $Name,
    [Parameter(Mandatory)] [string] $Folder
)
$ErrorActionPreference = 'Stop'
$removed = @()
$vm = Get-VM -Name $Name -ErrorAction SilentlyContinue
if ($vm) {
    if ($vm.State -ne 'Off') {
        Stop-VM -Name $Name -TurnOff -Force
    }
    Remove-VM -Name $Name -Force
    $removed += 'VM'
}
$vhd = Join-Path $Folder "$Name.vhdx"
if (Test-Path -LiteralPath $vhd) {
    Remove-Item -LiteralPath $vhd -Force
    $removed += 'disk'
}
[pscustomobject]@{ removed = $removed } | ConvertTo-Json -Compress
