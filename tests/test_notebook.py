"""The example notebook, docs/examples/quickstart.ipynb, executed in a real Jupyter kernel
(nbclient + ipykernel, as Jupyter would run it): every cell must run without an error,
and its own checks (the dose-response of its sweep, treated below untreated) must hold."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "examples" / "quickstart.ipynb"


def test_the_example_notebook_runs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "commit the notebook without outputs (they would go stale)"
    # run from its own folder, as a user opening it would; a failing cell raises CellExecutionError
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = "\n".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for out in cell.outputs if out.output_type == "stream")
    assert "dose-response as expected" in text
    images = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs
              if "image/png" in out.get("data", {})]
    assert len(images) == 2  # the time series and slice, the comparison
    sweep = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs
             if "text/html" in out.get("data", {}) and "chemo mg/day" in out["data"]["text/html"]]
    assert len(sweep) == 1
