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
