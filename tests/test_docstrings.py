"""Module docstrings stay short (at most 30 lines): the rationale lives in the guides and the
measured figures on the performance page, where they are kept current."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted([*(ROOT / "mdesign").rglob("*.py"), *(ROOT / "flows").rglob("*.py")])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_module_docstring_is_at_most_30_lines(path):
    doc = ast.get_docstring(ast.parse(path.read_text()), clean=False) or ""
    assert len(doc.splitlines()) <= 30
