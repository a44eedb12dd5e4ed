"""The demo (`python -m torch_keras_metrics.demo`) runs, answers the question and saves its plot."""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


def test_demo_runs_and_saves_the_plot(tmp_path, capsys):
    from torch_keras_metrics import demo

    out = tmp_path / "demo.png"
    demo.main(["--epochs", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert "Epoch 2/2" in text and "val_accuracy" in text  # Keras-style logs (verbose=2: not a terminal)
    assert "mean of batches" in text and "max batch" in text and "last batch" in text
    assert str(out) in text and out.stat().st_size > 1000
