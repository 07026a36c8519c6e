"""Per-OS steps run over a Transport inside each L1: hypervisor, L2 network, L2 guests."""
