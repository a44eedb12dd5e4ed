"""Re-execute every notebook here in a fresh kernel and save it with its new outputs.

Run after editing a notebook (or the library): `python notebooks/rerun.py [NAME.ipynb ...]`.
tests/test_notebooks.py fails while a stored notebook's outputs are stale.
"""

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

here = Path(__file__).parent
for path in [here / n for n in sys.argv[1:]] or sorted(here.glob("*.ipynb")):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(here)}}).execute()
    nbformat.write(nb, path)
    print("re-ran", path.name)
