# First boot of a Windows L1. Its answer file's one autologon (as Administrator)
# runs this script; after a rename, a startup task runs it once more (as SYSTEM).
# In order: autologon off, the cached answer file gone, the lab's computer name
# (renaming and restarting once when specialize did not set it), and, LAST, WinRM
# opened over HTTP 5985 for NTLM with message encryption (no Basic auth, no
# unencrypted traffic). The base image keeps WinRM shut (build.ps1), so nestlab's
# first WinRM contact finds this L1's name and password in place.
# Verified only against nestlab's FAKE first boot (tests/fakes/hyperv.py), not on Windows.
param(
    [Parameter(Mandatory = $true)][string]$ComputerName,
    [switch]$AfterRename
)
$ErrorActionPreference = 'Stop'

# The name goes into the startup task's command line: a NetBIOS name, nothing else.
if ($ComputerName -notmatch '^[A-Za-z0-9-]{1,15}$') {
    throw "not a computer name: $ComputerName"
}
$BlockRule = 'nestlab-winrm-block'
$TaskName = 'nestlab-first-boot'
$TaskScript = Join-Path $env:SystemRoot 'Setup\Scripts\nestlab-first-boot.ps1'
$Winlogon = 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon'

function Clear-AutoLogonSecret {
    # Windows may keep the autologon password as the LSA secret DefaultPassword as well
    # as in Winlogon; a null value deletes it (LsaStorePrivateData). After
    # rgl/windows-vagrant's provision-autounattend.ps1.
    Add-Type -TypeDefinition @'
using System;
using System.Runtime.InteropServices;
public static class NestlabLsaSecret {
    [StructLayout(LayoutKind.Sequential)]
    struct LsaString { public ushort Length; public ushort MaximumLength; public IntPtr Buffer; }
    [StructLayout(LayoutKind.Sequential)]
    struct LsaAttributes { public int Length; public IntPtr RootDirectory; public IntPtr ObjectName;
        public uint Attributes; public IntPtr SecurityDescriptor; public IntPtr SecurityQualityOfService; }
    [DllImport("advapi32.dll")]
    static extern uint LsaOpenPolicy(IntPtr system, ref LsaAttributes attributes, uint access, out IntPtr policy);
    [DllImport("advapi32.dll")]
    static extern uint LsaStorePrivateData(IntPtr policy, ref LsaString key, IntPtr data);
    [DllImport("advapi32.dll")]
    static extern uint LsaClose(IntPtr policy);
    const uint PolicyCreateSecret = 0x20;
    const uint ObjectNameNotFound = 0xC0000034;
    public static void Delete(string name) {
        var attributes = new LsaAttributes();
        IntPtr policy;
        uint status = LsaOpenPolicy(IntPtr.Zero, ref attributes, PolicyCreateSecret, out policy);
        if (status != 0) { throw new Exception("LsaOpenPolicy: 0x" + status.ToString("X")); }
        var key = new LsaString { Length = (ushort)(name.Length * 2),
            MaximumLength = (ushort)(name.Length * 2 + 2), Buffer = Marshal.StringToHGlobalUni(name) };
        try { status = LsaStorePrivateData(policy, ref key, IntPtr.Zero); }
        finally { LsaClose(policy); Marshal.FreeHGlobal(key.Buffer); }
        if (status != 0 && status != ObjectNameNotFound) {
            throw new Exception("LsaStorePrivateData: 0x" + status.ToString("X"));
        }
    }
}
'@
    [NestlabLsaSecret]::Delete('DefaultPassword')
}

function Disable-AutoLogon {
    # The answer file's autologon leaves its password in Winlogon: clear it, so that no
    # later boot (the rename's restart included) logs on by itself.
    Set-ItemProperty -Path $Winlogon -Name AutoAdminLogon -Value '0'
    foreach ($name in @('DefaultPassword', 'AutoLogonCount', 'DefaultUserName', 'DefaultDomainName')) {
        Remove-ItemProperty -Path $Winlogon -Name $name -ErrorAction SilentlyContinue
    }
    Clear-AutoLogonSecret
}

function Remove-CachedAnswerFile {
    # The answer file held this L1's Administrator password: do not leave a copy.
    foreach ($cached in @('C:\Windows\Panther\unattend.xml', 'C:\Windows\Panther\Unattend\unattend.xml')) {
        Remove-Item -Path $cached -Force -ErrorAction SilentlyContinue
    }
}

function Restart-WithLabName {
    # specialize names the computer from the answer file; when it did not, rename and
    # restart once. Autologon is already off, so no one logs on after the restart: a
    # startup task runs this script again (as SYSTEM) to open WinRM under the new name.
    Rename-Computer -NewName $ComputerName -Force
    New-Item -ItemType Directory -Force -Path (Split-Path -Parent $TaskScript) | Out-Null
    Copy-Item -Path $PSCommandPath -Destination $TaskScript -Force
    $arguments = "-NoProfile -ExecutionPolicy Bypass -File `"$TaskScript`" -ComputerName $ComputerName -AfterRename"
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument $arguments
    $trigger = New-ScheduledTaskTrigger -AtStartup
    $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
    Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -Principal $principal -Force | Out-Null
    Restart-Computer -Force
}

function Remove-StartupTask {
    Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false -ErrorAction SilentlyContinue
    Remove-Item -Path $TaskScript -Force -ErrorAction SilentlyContinue
}

function Wait-NetworkProfile {
    # At startup (after a rename) the network may not be identified yet; quickconfig
    # needs its profile, and refuses a Public one (pitfall P7).
    for ($try = 0; $try -lt 60; $try++) {
        if (Get-NetConnectionProfile -ErrorAction SilentlyContinue) { return }
        Start-Sleep -Seconds 5
    }
}

function Open-WinRM {
    Wait-NetworkProfile
    Get-NetConnectionProfile |
        Where-Object { $_.NetworkCategory -ne 'DomainAuthenticated' } |
        Set-NetConnectionProfile -NetworkCategory Private

    # build.ps1 disabled the service; quickconfig starts it and makes the listener.
    Set-Service -Name WinRM -StartupType Automatic
    & winrm quickconfig -quiet
    if ($LASTEXITCODE -ne 0) { throw "winrm quickconfig failed ($LASTEXITCODE)" }
    # rgl/windows-vagrant: delayed-auto, as auto proved unreliable.
    & sc.exe config WinRM start= delayed-auto | Out-Null
    Set-Item -Path 'WSMan:\localhost\Service\AllowUnencrypted' -Value $false
    Set-Item -Path 'WSMan:\localhost\Service\Auth\Basic' -Value $false
    Set-Item -Path 'WSMan:\localhost\Service\Auth\Negotiate' -Value $true

    $rule = Get-NetFirewallRule -Name 'nestlab-winrm-http' -ErrorAction SilentlyContinue
    if (-not $rule) {
        New-NetFirewallRule -Name 'nestlab-winrm-http' -DisplayName 'nestlab WinRM (HTTP 5985)' `
            -Direction Inbound -Protocol TCP -LocalPort 5985 -Action Allow -Profile Any | Out-Null
    }
    Remove-StartupTask
    # The block rule wins over every allow rule: removing it opens WinRM. Nothing of the
    # first boot may come after this but the logoff.
    Remove-NetFirewallRule -Name $BlockRule -ErrorAction SilentlyContinue
}

Disable-AutoLogon
Remove-CachedAnswerFile
if ($env:COMPUTERNAME -ne $ComputerName) {
    if ($AfterRename) {
        # Restart once, never in a loop: WinRM stays shut and nestlab's wait says so.
        throw "the computer is still $($env:COMPUTERNAME) after its rename to $ComputerName"
    }
    Restart-WithLabName
    exit 0
}
Open-WinRM
if (-not $AfterRename) {
    # The autologon session ends here; autologon is off, so none follows it.
    & logoff.exe
}
