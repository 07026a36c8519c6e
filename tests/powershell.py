"""PowerShell read with tree-sitter's PowerShell grammar (from PyPI), for tests."""

from __future__ import annotations

import tree_sitter
import tree_sitter_powershell

_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def parse(source: str) -> tree_sitter.Tree:
    return _PARSER.parse(source.encode())


def syntax_errors(source: str) -> list[str]:
    """Every ERROR or MISSING node, as 'line:column: text'."""
    found: list[str] = []

    def walk(node: tree_sitter.Node) -> None:
        if node.type == "ERROR" or node.is_missing:
            line, column = node.start_point
            text = (node.text or b"").decode(errors="replace")[:40]
            found.append(f"{line + 1}:{column + 1}: {node.type} {text!r}")
        for child in node.children:
            walk(child)

    walk(parse(source).root_node)
    return found


def script_parameters(source: str) -> dict[str, bool]:
    """The script's param() block: parameter name -> whether it is Mandatory."""
    root = parse(source).root_node
    block = next((c for c in root.children if c.type == "param_block"), None)
    if block is None:
        return {}
    parameters = {}
    for node in _descendants(block):
        if node.type != "script_parameter":
            continue
        variable = next(c for c in node.children if c.type == "variable")
        text = (node.text or b"").decode()
        parameters[(variable.text or b"").decode().lstrip("$")] = "Mandatory" in text
    return parameters


def _descendants(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    out = []
    for child in node.children:
        out.append(child)
        out.extend(_descendants(child))
    return out


def json_objects(source: str) -> list[frozenset[str] | None]:
    """What the script prints with ConvertTo-Json, one entry per such pipeline: the keys of
    the hashtable literal piped into it (``[pscustomobject]@{ ... }`` or ``@{ ... }``), or
    None when what is piped is built at run time (a variable, a command's output)."""
    found: list[frozenset[str] | None] = []
    for chain in _descendants(parse(source).root_node):
        if chain.type != "pipeline_chain" or not any(
                _command_name(c) == "convertto-json" for c in chain.children
                if c.type == "command"):
            continue
        literal = _first_of_type(chain.children[0], "hash_literal_expression")
        found.append(None if literal is None else _hash_keys(literal))
    return found


def _command_name(command: tree_sitter.Node) -> str:
    name = next((c for c in command.children if c.type == "command_name"), None)
    return (name.text or b"").decode().lower() if name is not None else ""


def _first_of_type(node: tree_sitter.Node, node_type: str) -> tree_sitter.Node | None:
    if node.type == node_type:
        return node
    return next((n for n in _descendants(node) if n.type == node_type), None)


def _hash_keys(literal: tree_sitter.Node) -> frozenset[str]:
    """The keys of a hashtable literal's own entries (not those of nested ones)."""
    body = next((c for c in literal.children if c.type == "hash_literal_body"), None)
    if body is None:
        return frozenset()
    keys = set()
    for entry in body.children:
        if entry.type == "hash_entry":
            key = next(c for c in entry.children if c.type == "key_expression")
            keys.add((key.text or b"").decode().strip("'\""))
    return frozenset(keys)
