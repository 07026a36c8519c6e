# Can this L1 take the Hyper-V role? Read before the role is installed: once
# the hypervisor runs, Win32_Processor reports these as False.
$cpu = Get-CimInstance -ClassName Win32_Processor | Select-Object -First 1
[pscustomobject]@{
    vmx = [bool]$cpu.VMMonitorModeExtensions
    slat = [bool]$cpu.SecondLevelAddressTranslationExtensions
} | ConvertTo-Json -Compress
