"""``nestlab init``: a course or project folder to start from: a lab file, a Makefile
with the targets a teaching lab uses, example checks and a short README for students.

The files come from templates/init/<template>/; nothing that exists is overwritten.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from nestlab.errors import InputError
from nestlab.render import render_template
from nestlab.state.paths import LAB_NAME_MAX, check_lab_name

TEMPLATES = ("linux", "windows")
FILES = {  # in the folder -> template (under templates/init/<template>/)
    "nestlab.yaml": "nestlab.yaml.j2",
    "Makefile": "Makefile.j2",
    "README.md": "README.md.j2",
    "tests/test_lab.py": "tests/test_lab.py",
}


def lab_name_for(folder: Path) -> str:
    """A lab name from the folder's name: ``Networks 101`` -> ``networks-101``."""
    name = re.sub(r"[^a-z0-9-]+", "-", folder.resolve().name.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:LAB_NAME_MAX].rstrip("-")
    return name or "lab"


def init(folder: Path, template: str, name: str | None) -> list[Path]:
    """Write the scaffold into ``folder`` (made when missing); returns the files written."""
    if template not in TEMPLATES:
        raise InputError(f"unknown template {template!r}; choose {', '.join(TEMPLATES)}")
    lab = check_lab_name(name) if name is not None else lab_name_for(folder)
    targets = {folder / relative: source for relative, source in FILES.items()}
    present = [str(path) for path in targets if path.exists() or path.is_symlink()]
    if present:
        raise InputError(f"{folder}: would overwrite {', '.join(present)}",
                         hint="`nestlab init` writes only new files: choose an empty folder.")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    written = []
    for path, source in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        name_in_package = f"init/{template}/{source}"
        if source.endswith(".j2"):
            text = render_template(name_in_package, lab=lab)
        else:
            text = (resources.files("nestlab.templates") / name_in_package).read_text()
        path.write_text(text)
        written.append(path)
    return written
