# Does Hyper-V run in this L1? Read after each restart of the role's install.
#
# Not proof: HypervisorPresent. It reflects the CPUID "hypervisor present" bit,
# which every KVM guest sees, Hyper-V or not; it is printed only so that a user
# who checks it is told why nestlab does not trust it.
# Proof, all three: the role is Installed; the hypervisor started in this boot,
# i.e. the System log has event 1 ("Hypervisor successfully started.") from
# Microsoft-Windows-Hyper-V-Hypervisor written since LastBootUpTime (message
# table of hvservice.sys, libyal/winevt-kb MessageFile-hvservice.sys.md, 10.0.17134
# and 17763; that Server 2016, 10.0.14393, writes the same event is unverified);
# and the Virtual Machine Management service (vmms) is Running.
# bcdedit's hypervisorlaunchtype Auto is not used: it says the boot loader will
# try to launch the hypervisor, not that it did. When the launch failed, the
# newest warning or error of that provider in this boot says why (e.g. event 41,
# "Hypervisor launch failed; Either VMX not present or not enabled in BIOS.").
# Unverified on a real L1: that event 1 is always written after LastBootUpTime.
function Get-NewestEvent([hashtable] $Filter) {
    # No matching event, or no such provider before the role: an error, read as none.
    try { Get-WinEvent -FilterHashtable $Filter -MaxEvents 1 -ErrorAction Stop } catch { $null }
}
$boot = (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime
$provider = 'Microsoft-Windows-Hyper-V-Hypervisor'
$started = Get-NewestEvent @{ LogName = 'System'; ProviderName = $provider; Id = 1; StartTime = $boot }
$failed = Get-NewestEvent @{
    LogName = 'System'; ProviderName = $provider; Level = 1, 2, 3; StartTime = $boot
}
$vmms = Get-Service -Name vmms -ErrorAction SilentlyContinue
[pscustomobject]@{
    role = [string](Get-WindowsFeature -Name Hyper-V).InstallState
    hypervisor_started = [bool]$started
    hypervisor_error = if ($failed) { [string]$failed.Message } else { '' }
    vmms = if ($vmms) { [string]$vmms.Status } else { 'absent' }
    hypervisor_present = [bool](Get-CimInstance -ClassName Win32_ComputerSystem).HypervisorPresent
    boot_time = $boot.ToString('o')
} | ConvertTo-Json -Compress
