"""The lab file as typed, frozen objects: the model, and the reader that validates it."""
