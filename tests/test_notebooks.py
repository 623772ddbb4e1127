"""The tutorials execute top to bottom (small data; the quick start needs the embedded model)."""
from pathlib import Path

import nbformat
import pytest

from landslide_wsss.paths import DEFAULT_MODEL

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    from nbclient import NotebookClient

    if "training" not in path.name and not DEFAULT_MODEL.is_file():
        pytest.skip("the embedded default model is not trained yet")
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    # Run from a copy of the notebook's folder layout so relative paths (../runs, ../../shared) resolve.
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
