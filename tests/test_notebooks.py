"""Every tutorial notebook runs top to bottom in a fresh kernel, and its stored outputs are current.

What is compared is what a reader sees (`notebooks/normal_form.py`: joined streams, display data,
volatile fields masked), never how the kernel chunked the output.
"""

import sys
from pathlib import Path

import nbformat
import pytest

HERE = Path(__file__).parent.parent / "notebooks"
sys.path.insert(0, str(HERE))
import normal_form  # noqa: E402

NOTEBOOKS = sorted(HERE.glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


def _stream(text, name="stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def test_the_view_ignores_chunking_and_masks_volatile_fields_only():
    plot = nbformat.v4.new_output("display_data", data={"image/png": "AAAA", "text/plain": "<Figure at 0x7f12>"})
    one = nbformat.v4.new_code_cell(outputs=[_stream("epoch 1 276us/step\nepoch 2\n"), plot])
    split = nbformat.v4.new_code_cell(
        outputs=[_stream("epoch 1 "), _stream("warn\n", "stderr"), _stream("3ms/step\nepoch 2\n"), plot]
    )
    assert normal_form.view(one)[1:] == normal_form.view(split)[2:]
    assert normal_form.view(one)[0] == normal_form.view(split)[0]
    assert normal_form.view(split)[1] == ("stream", "stderr", "warn\n")
    changed = nbformat.v4.new_code_cell(outputs=[_stream("epoch 1 276us/step\nepoch 3\n"), plot])
    assert normal_form.view(changed) != normal_form.view(one)
    assert "line 2" in normal_form.first_difference(normal_form.view(one), normal_form.view(changed))
    nb = nbformat.v4.new_notebook(cells=[split])
    assert [o["output_type"] for o in normal_form.normalize(nb).cells[0].outputs] == ["stream"] * 2 + ["display_data"]
    nbformat.validate(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_is_not_stale(path):
    stored = nbformat.read(path, as_version=4)
    fresh = normal_form.execute(nbformat.read(path, as_version=4))
    code = [(s, f) for s, f in zip(stored.cells, fresh.cells) if s.cell_type == "code"]
    assert code, "a notebook without code"
    for number, (old, new) in enumerate(code, 1):
        before, after = normal_form.view(old), normal_form.view(new)
        assert after == before, (
            f"{path.name}, code cell {number}: the stored outputs are stale; run `python notebooks/rerun.py "
            f"{path.name}` and save it. First difference, {normal_form.first_difference(before, after)}\n"
            f"source:\n{old.source[:300]}"
        )
    plots = [entry for _, cell in code for entry in normal_form.view(cell) if "image/png" in entry[1]]
    assert plots or "01_" in path.name, "tutorial notebooks 02 and 03 show at least one plot"
