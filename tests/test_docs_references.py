"""Every test the docs cite exists where they say.

SECURITY.md, README.md and the protocols' SPEC.md files cite tests as
```tests/test_x.py::test_name``` (or ```test_x.py::test_name```), and as ```::test_name``` for
another test in the file cited last. Each cited name must be a function or class defined at the
top level of that file (a parametrized test is cited by its function's name).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "SECURITY.md", ROOT / "README.md", *sorted(ROOT.glob("protocols/*/SPEC.md"))]
_CITATION = re.compile(r"`((?:tests/)?test_\w+\.py)?(?:::(\w+))?`")


@dataclass(frozen=True)
class Citation:
    """One ```file::name``` in a document (``file`` resolved for ```::name```)."""

    doc: str
    line: int
    file: str
    name: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.file}::{self.name}"


def citations(doc: Path) -> list[Citation]:
    """The test citations in ``doc``, in order.

    Raises
    ------
    AssertionError
        A ```::name``` before any file was cited.
    """
    found: list[Citation] = []
    current: str | None = None
    shown = doc.relative_to(ROOT).as_posix() if doc.is_relative_to(ROOT) else doc.name
    for number, line in enumerate(doc.read_text().splitlines(), start=1):
        for match in _CITATION.finditer(line):
            file, name = match.groups()
            if file:
                current = file if file.startswith("tests/") else f"tests/{file}"
            if name:
                assert current is not None, f"{doc.name}:{number}: ::{name} follows no file"
                found.append(Citation(shown, number, current, name))
    return found


@cache
def defined_names(file: str) -> frozenset[str]:
    """Top-level functions, classes and assigned names of a test file (empty if missing)."""
    path = ROOT / file
    if not path.is_file():
        return frozenset()
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return frozenset(names)


CITATIONS = [c for doc in DOCS for c in citations(doc)]


def test_the_docs_cite_tests() -> None:
    """The parser finds the citations (a format change would otherwise pass silently)."""
    assert len([c for c in CITATIONS if c.doc == "SECURITY.md"]) >= 40
    assert {c.file for c in CITATIONS} >= {"tests/test_masking.py", "tests/test_agents.py"}


@pytest.mark.parametrize("citation", CITATIONS, ids=str)
def test_every_cited_test_exists_in_the_cited_file(citation: Citation) -> None:
    names = defined_names(citation.file)
    assert names, f"{citation}: {citation.file} does not exist"
    if citation.name not in names:
        elsewhere = sorted(
            p.relative_to(ROOT).as_posix()
            for p in (ROOT / "tests").glob("test_*.py")
            if citation.name in defined_names(p.relative_to(ROOT).as_posix())
        )
        hint = f"; it is defined in {', '.join(elsewhere)}" if elsewhere else ""
        pytest.fail(f"{citation}: no such test in {citation.file}{hint}")


def test_continuations_follow_the_last_cited_file(tmp_path: Path) -> None:
    doc = tmp_path / "example.md"
    doc.write_text("`tests/test_a.py::one`, `::two`; `test_b.py` then `::three`\n`::four`\n")
    got = [(c.file, c.name, c.line) for c in citations(doc)]
    assert got == [
        ("tests/test_a.py", "one", 1),
        ("tests/test_a.py", "two", 1),
        ("tests/test_b.py", "three", 1),
        ("tests/test_b.py", "four", 2),
    ]
