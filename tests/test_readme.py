"""Every Python snippet of the README runs, in order, in one namespace (a later snippet may use
what an earlier one defined, as a reader following the README would), in a scratch directory."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)


def snippets() -> list[tuple[int, str]]:
    """(line, code) of each ```python block, dedented."""
    text = README.read_text()
    return [
        (text[: m.start()].count("\n") + 1, textwrap.dedent(m.group(2)))
        for m in _BLOCK.finditer(text)
    ]


def test_the_readme_has_snippets() -> None:
    assert len(snippets()) >= 9


def test_every_readme_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {"__name__": "readme"}
    for line, code in snippets():
        try:
            exec(compile(code, f"README.md:{line}", "exec"), scope)
        except Exception as exc:
            raise AssertionError(f"the README snippet at line {line} fails: {exc!r}") from exc
