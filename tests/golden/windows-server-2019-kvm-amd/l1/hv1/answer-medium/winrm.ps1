# First logon of a Windows L1: WinRM over HTTP 5985 for NTLM with message
# encryption. No Basic auth and no unencrypted traffic are allowed.
$ErrorActionPreference = 'Stop'

# A Public network profile makes quickconfig refuse (pitfall P7).
Get-NetConnectionProfile |
    Where-Object { $_.NetworkCategory -ne 'DomainAuthenticated' } |
    Set-NetConnectionProfile -NetworkCategory Private

& winrm quickconfig -quiet
Set-Item -Path 'WSMan:\localhost\Service\AllowUnencrypted' -Value $false
Set-Item -Path 'WSMan:\localhost\Service\Auth\Basic' -Value $false
Set-Item -Path 'WSMan:\localhost\Service\Auth\Negotiate' -Value $true

$rule = Get-NetFirewallRule -Name 'nestlab-winrm-http' -ErrorAction SilentlyContinue
if (-not $rule) {
    New-NetFirewallRule -Name 'nestlab-winrm-http' -DisplayName 'nestlab WinRM (HTTP 5985)' `
        -Direction Inbound -Protocol TCP -LocalPort 5985 -Action Allow -Profile Any | Out-Null
}

# The answer file held this L1's Administrator password: do not leave a copy.
foreach ($cached in @('C:\Windows\Panther\unattend.xml', 'C:\Windows\Panther\Unattend\unattend.xml')) {
    Remove-Item -Path $cached -Force -ErrorAction SilentlyContinue
}
