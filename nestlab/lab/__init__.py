"""The lab file as typed, frozen objects: the model, and the reader that validates it.

The default lab file and the most seats are here, apart from both, for the command
line's options: defining them loads neither YAML nor the model.
"""

DEFAULT_LAB_FILE = "nestlab.yaml"
MAX_SEATS = 40
"""More copies of one lab than a classroom needs, or one L0 host runs."""
