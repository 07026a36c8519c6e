"""The L0 host: reading its facts (facts.py) apart from deciding on them (check.py)."""
