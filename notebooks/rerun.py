"""Re-execute every notebook here in a fresh kernel and save it with its new outputs, in the normal form.

Run after editing a notebook (or the library): `python notebooks/rerun.py [NAME.ipynb ...]`.
tests/test_notebooks.py fails while a stored notebook's outputs are stale. The saved outputs are in
`normal_form.normalize`'s form (one stream output per run of printing), so a re-run changes only
what a reader would see change.
"""

import sys
from pathlib import Path

import nbformat

here = Path(__file__).parent
sys.path.insert(0, str(here))
from normal_form import execute, normalize  # noqa: E402

for path in [here / n for n in sys.argv[1:]] or sorted(here.glob("*.ipynb")):
    nb = execute(nbformat.read(path, as_version=4))
    nbformat.write(normalize(nb), path)
    print("re-ran", path.name)
