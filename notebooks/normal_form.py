"""How the notebooks are run, and what a reader of one sees in one normal form (the one place that says
which outputs may change between runs).

`execute(nb)` runs a notebook in a fresh kernel that talks over files in a private temporary folder
(never TCP ports, which another program could take between their choice and their use).

A kernel may split one cell's printing into several stream outputs (how it is chunked depends on timing),
so neither the saved notebooks nor the staleness test look at chunks:

- `normalize(nb)` joins each run of printed chunks (between two displays) into one stdout and one
  stderr output and drops per-run metadata. `rerun.py` saves notebooks in this form.
- `view(cell)` is what the staleness test compares, from the same merge: per stream, the joined text;
  per display or result output, its kinds of data and their text; per error, its name and value.
  Volatile fields are masked with `mask` first.

The volatile fields, masked as `<t>`, `<addr>` and `<path>`:
- wall-clock figures: `0s`, `276us/step`, `1.5 ms`;
- memory addresses: `<object at 0x7f3a...>`;
- absolute paths under the notebook's folder, a temporary folder or a home folder.
Images are compared by kind only: their bytes change with the plotting library's version.

>>> mask("500/500 - 0s - 276us/step - at 0x7f00ab in /tmp/abc/run.pt")
'500/500 - <t> - <t> - at <addr> in <path>'
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
_VOLATILE = [
    (re.compile(r"\b\d+(\.\d+)?\s?(ms|us|µs|s)(/step)?\b"), "<t>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<addr>"),
    (re.compile(re.escape(str(ROOT)) + r"[^\s'\"]*"), "<path>"),
    (re.compile(r"(/tmp|/var/folders|/home|/root)/[^\s'\"]*"), "<path>"),
]


def execute(nb: Any, timeout: int = 600) -> Any:
    """Run every cell of `nb` in a fresh python3 kernel, from the notebooks' folder; `nb` gets the outputs."""
    with tempfile.TemporaryDirectory(prefix="tkm-kernel-") as scratch:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(scratch) / "kernel"))
        NotebookClient(
            nb,
            km=km,
            timeout=timeout,
            # A cell's last outputs may arrive late on a busy machine: wait for them, and fail rather than
            # go on without them (nbclient's default waits 4 s, then drops them with a warning).
            iopub_timeout=timeout,
            raise_on_iopub_timeout=True,
            resources={"metadata": {"path": str(ROOT / "notebooks")}},
        ).execute()
    return nb


def mask(text: str) -> str:
    """`text` with its volatile fields (timings, addresses, paths) replaced by placeholders."""
    for pattern, placeholder in _VOLATILE:
        text = pattern.sub(placeholder, text)
    return text


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else value


def merge_streams(outputs: list) -> list:
    """The outputs with each run of stream chunks (between two displays) as one stdout then one stderr output.

    How a kernel chunks printed text, and how stdout and stderr chunks interleave, depends on timing;
    where text stands against a plot or a result does not (the kernel flushes its streams before
    a display).
    """
    merged: list = []
    run: dict[str, str] = {}

    def close_run() -> None:
        for name in ("stdout", "stderr"):
            if name in run:
                merged.append(nbformat.v4.new_output("stream", name=name, text=run[name]))
        run.clear()

    for out in outputs:
        if out["output_type"] == "stream":
            run[out["name"]] = run.get(out["name"], "") + _text(out["text"])
        else:
            close_run()
            merged.append(out)
    close_run()
    return merged


def normalize(nb: Any) -> Any:
    """`nb` (an nbformat notebook) in the saved normal form: streams merged, per-run metadata dropped."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = merge_streams(cell.outputs)
            cell.metadata.pop("execution", None)
    return nb


def view(cell: Any) -> list:
    """What a reader sees of one code cell's outputs, masked, as comparable values."""
    seen = []
    for out in merge_streams(cell.get("outputs", [])):
        kind = out["output_type"]
        if kind == "stream":
            seen.append(("stream", out["name"], mask(_text(out["text"]))))
        elif kind in ("execute_result", "display_data"):
            data = out["data"]
            texts = {k: mask(_text(v)) for k, v in sorted(data.items()) if k.startswith("text/")}
            seen.append((kind, sorted(data), texts))
        elif kind == "error":
            seen.append(("error", out["ename"], mask(out["evalue"])))
    return seen


def first_difference(old: list, new: list) -> str:
    """The first line where two `view`s differ, for a failure message."""
    old_lines, new_lines = _lines(old), _lines(new)
    for i, (a, b) in enumerate(zip(old_lines, new_lines)):
        if a != b:
            return f"line {i + 1}:\n  stored: {a!r}\n  fresh:  {b!r}"
    if len(old_lines) != len(new_lines):
        i = min(len(old_lines), len(new_lines))
        extra = (old_lines if len(old_lines) > i else new_lines)[i]
        side = "stored" if len(old_lines) > i else "fresh"
        return f"line {i + 1}: only the {side} outputs have {extra!r}"
    return "no line differs"


def _lines(view_: list) -> list[str]:
    lines = []
    for entry in view_:
        if entry[0] == "stream":
            lines += [f"[{entry[1]}] {line}" for line in entry[2].splitlines()]
        elif entry[0] == "error":
            lines.append(f"[error] {entry[1]}: {entry[2]}")
        else:
            lines.append(f"[{entry[0]}] {', '.join(entry[1])}")
            for mime, text in entry[2].items():
                lines += [f"[{mime}] {line}" for line in text.splitlines()]
    return lines
