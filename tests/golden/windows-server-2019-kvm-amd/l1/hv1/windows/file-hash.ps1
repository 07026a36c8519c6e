# The SHA-256 of a file in the L1, or null when it is missing (so nestlab
# copies a prime ISO only when it changed).
param([Parameter(Mandatory)] [string] $Path)
$hash = $null
if (Test-Path -LiteralPath $Path) {
    $hash = (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash
}
[pscustomobject]@{ sha256 = $hash } | ConvertTo-Json -Compress
