"""docs/security.md names, for each promise, the tests that show it: every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?::(\w+)`")


def named_tests() -> list[tuple[str, str]]:
    """(file, test) for every `file::test` and every following `::test` (same file) in the document."""
    found, current = [], None
    for match in REFERENCE.finditer((ROOT / "docs/security.md").read_text()):
        current = match.group(1) or current
        assert current is not None, f"::{match.group(2)} names no file"
        found.append((current, match.group(2)))
    return found


def test_every_test_named_in_docs_security_exists() -> None:
    named = named_tests()
    assert len(named) > 40
    missing = []
    for file, test in named:
        path = ROOT / file
        functions = (
            {
                n.name
                for n in ast.walk(ast.parse(path.read_text()))
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            if path.exists()
            else set()
        )
        if test not in functions or not test.startswith("test_"):
            missing.append(f"{file}::{test}")
    assert missing == []
