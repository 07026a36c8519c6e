"""nestlab's own JSON state files read back into the frozen dataclasses they were written
from (``json.dumps(asdict(...))``), every field checked against its type.

The lab file, written by people, goes through pydantic (``lab.labfile``). A lab's
record and its recorded status are nestlab's own, so a check of each field's type
is all they need, and `status --cached` answers without loading pydantic: that is
about half of its start-up as a new process (bench/status.py). What pydantic's
dataclass validation did here stays: keys the class does not know are ignored, a
missing field takes its default, a JSON number is a float.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

Read = TypeVar("Read")
KeyPath = tuple[str | int, ...]


def dataclass_from_json(kind: type[Read], value: Any) -> Read:
    """``value`` as ``json.loads`` gave it, made a ``kind``; ``ValueError`` naming the key
    path of the first field that is missing or not of its type."""
    made: Read = _typed(kind, value, ())
    return made


def _typed(kind: Any, value: Any, where: KeyPath) -> Any:
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise _not_a(where, "an object", value)
        fields = {}
        for field in dataclasses.fields(kind):
            if field.name in value:
                fields[field.name] = _typed(_hints(kind)[field.name], value[field.name],
                                            (*where, field.name))
            elif field.default is dataclasses.MISSING and \
                    field.default_factory is dataclasses.MISSING:
                raise ValueError(f"{_at((*where, field.name))}: missing")
        return kind(**fields)
    if typing.get_origin(kind) is types.UnionType and len(typing.get_args(kind)) == 2 and \
            type(None) in typing.get_args(kind):  # X | None
        if value is None:
            return None
        (other,) = (a for a in typing.get_args(kind) if a is not type(None))
        return _typed(other, value, where)
    if typing.get_origin(kind) is tuple:  # tuple[X, ...]
        if not isinstance(value, list):
            raise _not_a(where, "a list", value)
        item = typing.get_args(kind)[0]
        return tuple(_typed(item, v, (*where, i)) for i, v in enumerate(value))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (str, bool, float, int):
        if type(value) is not kind:  # bool is an int, and must not pass for one
            raise _not_a(where, {str: "a string", bool: "true or false",
                                 float: "a number", int: "an integer"}[kind], value)
        return value
    raise TypeError(f"{kind!r} has no JSON form here")  # a field type this module lacks


@functools.cache
def _hints(kind: type) -> dict[str, Any]:
    """The field types, evaluated (``from __future__ import annotations`` leaves text)."""
    return typing.get_type_hints(kind)


def _not_a(where: KeyPath, expected: str, value: Any) -> ValueError:
    return ValueError(f"{_at(where)}: expected {expected}, got {type(value).__name__}")


def _at(where: KeyPath) -> str:
    return ".".join(str(key) for key in where) or "the file"
