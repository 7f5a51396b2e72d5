"""The package's layers, checked on the code: data flows one way (models → memory → metrics → decision → apps),
and the switching side starts without torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "stmltm_nb"
# rank of each layer: a module may import only from its own rank or lower ones
LAYERS = {"env": 0, "io": 0, "prompts": 0, "shipped": 0, "models": 0, "memory": 1, "metrics": 2, "decision": 3,
          "apps": 4, "__init__": 5}
MAX_LINES = 500


def _layer(module: str) -> int:
    top = module.split(".")[1] if module.startswith("stmltm_nb.") else module
    return LAYERS[top]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG.parent).with_suffix("")
        out.append((".".join(rel.parts), p))
    return out


def _imports(path: Path, module: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = module.split(".")[: -node.level]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module and node.module.startswith("stmltm_nb"):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("stmltm_nb")}
    return {m for m in found if m != "stmltm_nb"}


@pytest.mark.parametrize("module,path", _modules(), ids=lambda x: x if isinstance(x, str) else "")
def test_no_import_from_a_higher_layer(module, path):
    mine = _layer(module)
    up = sorted(m for m in _imports(path, module) if _layer(m) > mine)
    assert not up, f"{module} (layer {mine}) imports from a higher layer: {up}"


@pytest.mark.parametrize("module,path", _modules(), ids=lambda x: x if isinstance(x, str) else "")
def test_no_module_over_the_size_limit(module, path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines (limit {MAX_LINES}): split it by job"


@pytest.mark.parametrize("module", ["stmltm_nb.decision.switching", "stmltm_nb.decision.curves",
                                    "stmltm_nb.decision.policies", "stmltm_nb.decision.inputs",
                                    "stmltm_nb.decision.symbolic", "stmltm_nb.decision.online", "stmltm_nb.apps.tuner",
                                    "stmltm_nb.decision.stream_log", "stmltm_nb.metrics.probe"])
def test_switching_side_imports_no_torch_and_no_memory(module):
    code = (f"import sys, {module}; bad = [m for m in ('torch', 'transformers', 'peft', 'stmltm_nb.memory') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
