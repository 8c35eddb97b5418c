"""The README is a short front door; its examples and Getting started's name things that exist."""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from pathlib import Path

import pytest

from mdesign.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PAGES = ["README.md", "docs/getting-started.md"]
TUTORIALS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs/tutorials").glob("*.md"))


def _blocks(page: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", (ROOT / page).read_text(), re.M | re.S)


def test_readme_is_short_keeps_the_make_commands_and_has_no_benchmark_table():
    assert len(README.splitlines()) <= 150
    assert "make demo    # sets up .venv and runs the main job\n" in README
    assert "make test    # sets up .venv, lints (ruff) and runs the whole test suite\n" in README
    tables = [line for line in README.splitlines() if line.startswith("|")]
    assert not any(re.search(r"\d\.\d", line) for line in tables)  # no measured figures
    for target in re.findall(r"\]\(((?:docs/|LICENSE|CITATION)[^)#]*)\)", README):
        assert (ROOT / target).exists(), target


@pytest.mark.parametrize("page", PAGES)
def test_python_examples_import_what_exists(page):
    blocks = _blocks(page, "python")
    assert len(blocks) >= 3
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), (node.module, alias.name)


@pytest.mark.parametrize("page", PAGES + TUTORIALS)
def test_commands_parse(page):
    parser = build_parser()
    lines = [
        re.sub(r"^(\w+=\S*\s+)+", "", line.strip())  # without an environment prefix
        for block in _blocks(page, "bash")
        for line in block.replace("\\\n", " ").splitlines()
    ]
    commands = [c for c in lines if c.startswith("mdesign ") and "--help" not in c]
    assert len(commands) >= (5 if page in PAGES else 1)
    for command in commands:
        args = shlex.split(command.split("#")[0])[1:]
        parser.parse_args(args)  # exits (fails the test) on an unknown command or option


def test_readme_task_table_names_commands_and_functions_that_exist():
    """Each task (the five user stories and your own material): a command, a function, a page."""
    start = README.index("## What do you want to do?")
    rows = [r for r in README[start:].split("\n## ")[0].splitlines() if r.startswith("| ")][2:]
    assert len(rows) >= 5
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    for row in rows:
        _, _, command, python, page, _ = row.split("|")
        names = re.findall(r"`mdesign ([\w-]+)`|`([\w-]+)`", command)
        assert names and all((a or b) in commands for a, b in names), command
        module = None
        for name in re.findall(r"`([\w.]+)`", python):
            if "." in name:
                module_name, name = name.rsplit(".", 1)
                module = importlib.import_module(module_name)
            assert module is not None and callable(getattr(module, name)), (row, name)
        assert re.search(r"\]\(docs/[\w/.-]+\.md\)", page), page
