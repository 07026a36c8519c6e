# Restart the L1 (after the Hyper-V role). The WinRM session drops with it.
Restart-Computer -Force
