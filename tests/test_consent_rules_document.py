"""docs/consent-rules.md names, for every rule, the tests that prove it; they must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "docs" / "consent-rules.md"
_TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def rules() -> dict[str, str]:
    sections = re.split(r"^### ", RULES.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]
    return {section.split("\n", 1)[0]: section for section in sections}


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")
    }


def test_every_rule_names_tests_and_every_named_test_exists() -> None:
    found = rules()
    assert len(found) >= 18, "docs/consent-rules.md lost rules"
    for title, text in found.items():
        named = _TEST.findall(text)
        assert named, f"rule {title!r} names no test"
        for file, name in named:
            assert (ROOT / file).is_file(), f"rule {title!r}: no file {file}"
            assert name in defined_tests(ROOT / file), f"rule {title!r}: {file} has no {name}"
