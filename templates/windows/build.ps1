# nestlab image build, first logon: generalize this installation and power off.
# nestlab waits for the power-off; the disk is then the base image. Sysprep
# removes the machine's identity, so every L1 cloned from it gets its own at
# its first boot (computer name, SID, Administrator password).
$ErrorActionPreference = 'Stop'
$sysprep = Join-Path $env:SystemRoot 'System32\Sysprep\sysprep.exe'
& $sysprep /generalize /oobe /shutdown /quiet
