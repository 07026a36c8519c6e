"""The commands behind the CLI: up, down, status, access to guests, plan, and the loaded lab."""
