# What Windows reports of the processor's virtualization, read before the role is
# installed (once the hypervisor runs, Win32_Processor reports these as False).
# nestlab only warns when they are False: whether Windows in a KVM guest reports
# them at all is unverified, so the proof is the role, vmms, the hypervisor's
# launch (hyperv-state.ps1) and the L2s starting.
$cpu = Get-CimInstance -ClassName Win32_Processor | Select-Object -First 1
[pscustomobject]@{
    vmx = [bool]$cpu.VMMonitorModeExtensions
    slat = [bool]$cpu.SecondLevelAddressTranslationExtensions
} | ConvertTo-Json -Compress
