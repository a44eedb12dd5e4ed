"""The semantics reference stays true to the suite: every test it names exists."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_test_the_semantics_reference_cites_exists():
    text = (ROOT / "docs" / "semantics.md").read_text()
    cited = re.findall(r"(tests/[\w/]+\.py)::(test_\w+)", text)
    assert len(cited) > 50
    missing = [f"{f}::{name}" for f, name in cited if name not in _tests_in(ROOT / f)]
    assert not missing, f"docs/semantics.md cites tests that do not exist: {missing}"


def test_citations_point_into_the_repository():
    sources = [ROOT / "README.md", *ROOT.glob("torch_keras_metrics/*.py"), *ROOT.glob("tests/*.py")]
    for path in sources:
        if path != Path(__file__):  # the outside reference is never cited: the project keeps its own
            assert "SEMANTICS" not in path.read_text(), path
    sections = set(re.findall(r"^## (§\d+)", (ROOT / "docs" / "semantics.md").read_text(), re.M))
    for path in [ROOT / "README.md", *ROOT.glob("torch_keras_metrics/*.py")]:
        for section in re.findall(r"docs/semantics\.md (§\d+)", path.read_text()):
            assert section in sections, (path, section)
