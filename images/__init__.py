"""Image recipes (one folder each); shipped with the package as nestlab.recipes."""
