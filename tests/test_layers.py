"""The package's layers, checked on the code: data flows one way (models → memory → metrics → decision → apps),
the switching side starts without torch, and the package reads nothing of the checkout but data/ (notebooks/ and
benchmarks/ are read by the development tooling in tools/)."""

import ast
import re
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


@pytest.mark.parametrize("module,path", _modules(), ids=[m for m, _ in _modules()])
def test_no_reexport_shims_and_no_alias_names(module, path):
    """A name lives in one module and is imported from there: no ``noqa: F401`` re-export, and no class attribute
    that only renames a method (``save = save_pretrained``)."""
    text = path.read_text()
    assert "noqa: F401" not in text, f"{module} re-exports names: import them from their home module"
    for cls in (n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ClassDef)):
        methods = {f.name for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
        aliases = [t.id for a in cls.body if isinstance(a, ast.Assign) and isinstance(a.value, ast.Name)
                   and a.value.id in methods for t in a.targets if isinstance(t, ast.Name)]
        assert not aliases, f"{module}.{cls.name} keeps alias names {aliases}: one name per method"


@pytest.mark.parametrize("module", ["stmltm_nb.decision.switching", "stmltm_nb.decision.curves",
                                    "stmltm_nb.decision.policies", "stmltm_nb.decision.inputs",
                                    "stmltm_nb.decision.symbolic", "stmltm_nb.decision.online", "stmltm_nb.apps.tuner",
                                    "stmltm_nb.decision.stream_log", "stmltm_nb.metrics.probe"])
def test_switching_side_imports_no_torch_and_no_memory(module):
    code = (f"import sys, {module}; bad = [m for m in ('torch', 'transformers', 'peft', 'stmltm_nb.memory') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- the package reads nothing of the checkout but data/ ----------------------------------------------------
# stmltm_nb must work from an installed wheel: notebooks/, benchmarks/ and the README belong to the checkout, and
# the tooling that reads them is tools/ (run by make, not shipped). Only shipped.py looks outside the package, for
# the checkout's data/ (which the wheel carries as stmltm_nb/_data/).
CHECKOUT_ONLY = re.compile(r"^(?:\.{0,2}/)*(?:benchmarks|notebooks)(?:/|$)|(?:^|/)\.\./")
CLIMB_ALLOWED = {"shipped.py"}
TOOLS = PKG.parent / "tools"


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def _levels(node: ast.AST) -> int | None:
    """How many folders ``node`` climbs from ``Path(__file__)``: ``.parent`` one, ``.parents[k]`` k + 1, with any
    ``.resolve()`` / ``.absolute()`` between; None when it is not such an expression."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Path" and node.args:
        return 0 if isinstance(node.args[0], ast.Name) and node.args[0].id == "__file__" else None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("resolve", "absolute"):
        return _levels(node.func.value)
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        inner = _levels(node.value)
        return None if inner is None else inner + 1
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents"
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int)):
        inner = _levels(node.value.value)
        return None if inner is None else inner + node.slice.value + 1
    return None


def checkout_reads(source: str, rel: Path) -> list[str]:
    """What a module of the package (``rel``: its path inside ``stmltm_nb/``) reads of the checkout: path strings
    naming notebooks/ or benchmarks/ (or ``../``, or ``/ ".."``), ``Path(__file__)`` climbs above the package,
    imports of tools and os.path.dirname (climbs this scan does not follow). Docstrings may name anything."""
    tree = ast.parse(source)
    docs, found = _docstrings(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if CHECKOUT_ONLY.search(node.value.strip()):
                found.append(f"line {node.lineno}: path {node.value.strip()[:40]!r}")
        elif (isinstance(node, (ast.Attribute, ast.Subscript)) and (n := _levels(node)) is not None
              and n > len(rel.parts) and rel.as_posix() not in CLIMB_ALLOWED):
            found.append(f"line {node.lineno}: climbs {n} folders from __file__, out of the package")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tools":
            found.append(f"line {node.lineno}: imports {node.module}")
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "tools" for a in node.names):
            found.append(f"line {node.lineno}: imports tools")
        elif isinstance(node, ast.Attribute) and node.attr == "dirname":
            found.append(f"line {node.lineno}: os.path.dirname")
        elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
              and any(isinstance(x, ast.Constant) and x.value == ".." for x in (node.left, node.right))):
            found.append(f"line {node.lineno}: / '..'")
    return found


@pytest.mark.parametrize("module,path", _modules(), ids=lambda x: x if isinstance(x, str) else "")
def test_the_package_reads_no_notebooks_or_benchmarks(module, path):
    found = checkout_reads(path.read_text(), path.relative_to(PKG))
    assert not found, f"{module} reaches into the checkout ({found}): move that to tools/ or pass the path in"


def test_the_scan_catches_what_the_package_used_to_read():
    old = ['ROOT = Path(__file__).resolve().parents[2]  # the checkout',
           'POLICY = ROOT / "benchmarks" / "results" / "policy_regret.json"',
           'RUNTIMES = Path(__file__).parent.parent.parent / "notebooks/runtimes.json"',
           'p = here / "../benchmarks/results/x.json"',
           'p = f"{root}/notebooks/figures"',
           'p = Path.cwd() / ".." / "data"',
           'from tools.prose import namespace']
    for line in old:
        assert checkout_reads(line, Path("apps/prose.py")), line
    fine = ['"""Rendered for the notebooks (benchmarks/results/policy_regret.json)."""',
            'def f():\n    """Reads ``notebooks/runtimes.json``? No: the caller passes it."""',
            'print("run `make notebooks` or python benchmarks/probe.py")',
            'PKG = Path(__file__).resolve().parent / "_data"',
            'A = Path(__file__).resolve().parents[1] / "data"',
            'raise ValueError("an id may not hold \'..\' or slashes")']
    for text in fine:
        assert not checkout_reads(text, Path("apps/prose.py")), text
    assert checkout_reads('D = Path(__file__).parent.parent / "data"', Path("models.py"))
    assert not checkout_reads('D = Path(__file__).parent.parent / "data"', Path("shipped.py"))


@pytest.mark.parametrize("path", sorted(TOOLS.glob("*.py")), ids=lambda p: p.name)
def test_no_tool_over_the_size_limit(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"tools/{path.name} has {n} lines (limit {MAX_LINES}): split it by job"


@pytest.mark.parametrize("module,path", _modules(), ids=[m for m, _ in _modules()])
def test_no_module_imports_another_modules_private_names(module, path):
    """A name one module needs from another is public there: no ``from stmltm_nb.x import _name`` (files split
    for a line cap used to share their private helpers that way)."""
    priv = [(n.module, a.name) for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)
            and (n.module or "").startswith("stmltm_nb") for a in n.names if a.name.startswith("_")]
    assert not priv, f"{module} imports private names of other modules: {priv}"
