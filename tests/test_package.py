"""The package's front door: ``dir(mdesign)`` lists the entry points, imported on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import mdesign


def test_import_is_fast_and_loads_neither_torch_nor_matplotlib():
    code = (
        "import sys, time; t = time.perf_counter(); import mdesign; "
        "dt = time.perf_counter() - t; dir(mdesign); "
        "print(dt, 'torch' in sys.modules, 'matplotlib' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, torch, mpl, np = out.stdout.split()
    assert float(seconds) < 0.5
    assert (torch, mpl, np) == ("False", "False", "False")


def test_dir_lists_the_entry_points_and_each_is_its_module_s_object():
    names = dir(mdesign)
    for name, module in mdesign._WHERE.items():
        assert name in names and name in mdesign.__all__
        assert getattr(mdesign, name) is getattr(importlib.import_module(module), name)
    for sub in ("grf", "descriptors", "gan", "reconstruction", "evaluators", "seeds", "segment"):
        assert sub in names and getattr(mdesign, sub) is importlib.import_module(f"mdesign.{sub}")
    # the five user stories each have their function at the top
    for name in ("grf_microstructures", "characterize", "reconstruct", "sample_latents", "decode"):
        assert callable(getattr(mdesign, name))
    assert not {"annotations", "importlib"} & set(names)  # no implementation details
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mdesign.nope  # noqa: B018
