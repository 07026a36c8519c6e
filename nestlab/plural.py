"""Counts in messages: "1 vCPU", "2 vCPUs" (every noun nestlab counts takes an s)."""

from __future__ import annotations


def counted(number: int, noun: str) -> str:
    """``number`` and ``noun``, in the plural unless there is exactly one."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
