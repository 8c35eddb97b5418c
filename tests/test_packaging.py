"""What the distribution installs: every package of the source tree, under the project's names."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_installed_and_flows_is_not_a_generic_name():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = tool.get("package-dir", {})
    assert mapping == {"mdesign_flows": "flows"}
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mdesign").rglob("__init__.py")
    }
    on_disk |= {"mdesign_flows"} if (ROOT / "flows" / "__init__.py").is_file() else set()
    assert set(tool["packages"]) == on_disk
    assert not any(p == "flows" or p.startswith("flows.") for p in tool["packages"])


def test_the_flows_import_no_generic_flows_package():
    # inside flows/, imports are relative (they work under the installed name)
    for path in sorted((ROOT / "flows").glob("*.py")):
        text = path.read_text()
        assert "from flows" not in text and "import flows" not in text, path.name
