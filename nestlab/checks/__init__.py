"""nestlab's built-in lab checks: ordinary testinfra tests that `nestlab verify` runs
against a lab that is up (read them, copy them into your own tests)."""
