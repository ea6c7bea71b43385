"""docs/RELIABILITY.md cannot drift from the suite: every test it names exists (with its
parameter id), and every test of the suite is named there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPORT = HERE.parent.parent / "docs" / "RELIABILITY.md"
REFERENCE = re.compile(r"`(test_\w+\.py)::(test_\w+)(?:\[([^\]`]+)\])?`")


def suite_tests() -> dict[str, set[str]]:
    """``{file name: names of its test functions}`` for every test module of the suite."""
    found = {}
    for path in sorted(HERE.glob("test_*.py")):
        tree = ast.parse(path.read_text(), str(path))
        found[path.name] = {node.name for node in tree.body
                            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
    return found


def test_every_test_named_here_exists_and_every_test_is_named():
    text = REPORT.read_text()
    tests = suite_tests()
    references = REFERENCE.findall(text)
    assert len(references) >= 40
    named = set()
    for file, function, param in references:
        assert file in tests, f"{file} (named in {REPORT.name}) does not exist"
        assert function in tests[file], f"{file}::{function} (named in {REPORT.name}) does not exist"
        if param:  # parameter ids are string literals (or function names) in the test module
            source = (HERE / file).read_text()
            assert any(form in source for form in (f'"{param}"', f"'{param}'", f"def {param}(")), \
                f"{file}::{function}[{param}]: no such case"
        named.add((file, function))
    missing = {(f, name) for f, names in tests.items() for name in names} - named
    assert not missing, f"tests not described in {REPORT.name}: {sorted(missing)}"
