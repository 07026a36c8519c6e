# Install the Hyper-V role with its management tools unless it is installed.
# It does not restart: nestlab restarts the L1 and waits for WinRM itself.
$feature = Get-WindowsFeature -Name Hyper-V
$restart = $false
if ($feature.InstallState -ne 'Installed') {
    $result = Install-WindowsFeature -Name Hyper-V -IncludeManagementTools
    if (-not $result.Success) {
        throw "Install-WindowsFeature Hyper-V failed: $($result.ExitCode)"
    }
    $restart = [string]$result.RestartNeeded -ne 'No'
}
[pscustomobject]@{
    role = [string](Get-WindowsFeature -Name Hyper-V).InstallState
    restart_needed = $restart
} | ConvertTo-Json -Compress
