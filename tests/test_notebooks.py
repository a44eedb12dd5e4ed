"""Every tutorial notebook runs top to bottom in a fresh kernel, and its stored outputs are current."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
# Wall-clock figures are the one thing allowed to change between runs.
TIMINGS = re.compile(r"\d+(\.\d+)?\s?(ms|us|µs|s)(/step)?\b")


def _outputs(cell) -> list:
    """A cell's outputs as comparable text: streams and plain text exactly (timings masked), images by kind."""
    seen = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            seen.append((out["name"], TIMINGS.sub("<t>", out["text"])))
        elif out["output_type"] in ("execute_result", "display_data"):
            data = out["data"]
            seen.append(("image/png" in data, TIMINGS.sub("<t>", data.get("text/plain", ""))))
        elif out["output_type"] == "error":
            seen.append(("error", out["ename"], out["evalue"]))
    return seen


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_is_not_stale(path):
    stored = nbformat.read(path, as_version=4)
    fresh = nbformat.read(path, as_version=4)
    NotebookClient(
        fresh, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    code = [(s, f) for s, f in zip(stored.cells, fresh.cells) if s.cell_type == "code"]
    assert code, "a notebook without code"
    for number, (old, new) in enumerate(code, 1):
        assert _outputs(new) == _outputs(old), (
            f"{path.name}, code cell {number}: the stored outputs are stale; re-run the notebook and save it.\n"
            f"source:\n{old.source[:300]}"
        )
    assert any(any(kind is True for kind, *_ in _outputs(c)) for _, c in code) or "01_" in path.name, (
        "tutorial notebooks 02 and 03 show at least one plot"
    )
