"""The latent-exploration notebook runs end to end on the shipped model (its cells assert)."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "latent_exploration.ipynb"


def test_latent_exploration_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # a CellExecutionError (any failing cell or assert) fails the test
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5  # samples, interpolation, effect maps, sweep, 256x256
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "trained on 5000 images" in text
    # the explorer: a widget view, and its sliders moved by code updated the image (asserted there)
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(widgets) == 1
    assert "(cut at 0.42)" in text
