"""Allow ``python -m nestlab``."""

from nestlab.cli import main

main()
