# Is an L2 really up? Hyper-V's view (state, heartbeat from the prime's
# hv_utils) and its SSH port answering from inside the L1.
param(
    [Parameter(Mandatory)] [string] $Name,
    [Parameter(Mandatory)] [string] $Address
)
$vm = Get-VM -Name $Name -ErrorAction SilentlyContinue
$heartbeat = Get-VMIntegrationService -VMName $Name -Name 'Heartbeat' -ErrorAction SilentlyContinue
$client = New-Object System.Net.Sockets.TcpClient
$ssh = $false
try {
    $ssh = $client.ConnectAsync($Address, 22).Wait(3000)
} catch {
    $ssh = $false
} finally {
    $client.Dispose()
}
[pscustomobject]@{
    state = [string]$vm.State
    heartbeat = [string]$heartbeat.PrimaryStatusDescription
    ssh = [bool]$ssh
} | ConvertTo-Json -Compress
