# The folder of one L2 in the L1, made before its prime ISO is copied into it:
# pypsrp's copy moves a temporary file to the destination and makes no folder.
param([Parameter(Mandatory)] [string] $Path)
$ErrorActionPreference = 'Stop'
$created = $false
if (-not (Test-Path -LiteralPath $Path -PathType Container)) {
    New-Item -ItemType Directory -Path $Path -Force | Out-Null
    $created = $true
}
[pscustomobject]@{ created = $created } | ConvertTo-Json -Compress
