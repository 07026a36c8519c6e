"""A lab's folder on L0: its paths, record and plan, its keys."""
