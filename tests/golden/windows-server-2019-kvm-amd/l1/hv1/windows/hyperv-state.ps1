# After the role's reboots: is the role installed and the hypervisor running?
[pscustomobject]@{
    role = [string](Get-WindowsFeature -Name Hyper-V).InstallState
    hypervisor_present = [bool](Get-CimInstance -ClassName Win32_ComputerSystem).HypervisorPresent
    boot_time = (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime.ToString('o')
} | ConvertTo-Json -Compress
