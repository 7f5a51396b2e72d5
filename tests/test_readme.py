"""The README's map of the code stays true: every module path it names in the concept table and the layout
exists in the package."""

import importlib
import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
LAYERS = ("memory", "metrics", "decision", "apps")


def _section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _concept_paths() -> list[str]:
    names = re.findall(r"`([a-z_]+(?:\.[A-Za-z_]+)+)`", _section("Where each spec concept lives"))
    return sorted({n for n in names if n.split(".")[0] in LAYERS})


def _resolve(path: str):
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
        try:
            obj = importlib.import_module("stmltm_nb." + ".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(path)


@pytest.mark.parametrize("path", _concept_paths())
def test_concept_table_names_real_code(path):
    assert _resolve(path) is not None


def test_layout_lists_every_module():
    layout = _section("Layout")
    pkg = Path(__file__).resolve().parent.parent / "stmltm_nb"
    for layer in LAYERS:
        line = re.search(rf"{layer}/\s+(.*?)(?=\n  \S|\nnotebooks/)", layout, re.S).group(1)
        listed = set(re.findall(r"\b([a-z_]+)\b", line))
        modules = {p.stem for p in (pkg / layer).glob("*.py") if p.stem != "__init__"}
        assert modules <= listed, f"{layer}/: not in the README layout: {sorted(modules - listed)}"
