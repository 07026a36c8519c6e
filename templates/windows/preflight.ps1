# Can this L1 take the Hyper-V role? Read before the role is installed: once
# the hypervisor runs, Win32_Processor reports these as False.
$cpu = Get-CimInstance -ClassName Win32_Processor | Select-Object -First 1
$system = Get-CimInstance -ClassName Win32_ComputerSystem
$feature = Get-WindowsFeature -Name Hyper-V
[pscustomobject]@{
    vmx = [bool]$cpu.VMMonitorModeExtensions
    slat = [bool]$cpu.SecondLevelAddressTranslationExtensions
    firmware = [bool]$cpu.VirtualizationFirmwareEnabled
    hypervisor_present = [bool]$system.HypervisorPresent
    role = [string]$feature.InstallState
} | ConvertTo-Json -Compress
