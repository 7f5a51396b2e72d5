"""CONTRIBUTING.md is checked against the code: every path it names exists, every code name it cites is defined
in the package or the tests, its three recipes name files to touch and tests, and the policy recipe works as
written (a toy online rule added to ``RULES`` runs in the simulator and is accepted by the controller's config).
The backend recipe is walked by ``tests/test_backends.py`` (a toy backend registered by the test)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "CONTRIBUTING.md"
TEXT = PAGE.read_text()
CODE = re.findall(r"`([^`\n]+)`", TEXT)
PATH_RE = re.compile(r"^[\w.-]+(/[\w.-]*)+$")
NAME_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)?$")
NOT_NAMES = {"cartridge.json", "make", "torch"}  # file names and words that are not code names


def _paths() -> list[str]:
    return sorted({c for c in CODE if PATH_RE.match(c) and not c.startswith(".venv")})


def _assigned(node: ast.AST) -> list[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return [t.id if isinstance(t, ast.Name) else t.attr for t in targets if isinstance(t, (ast.Name, ast.Attribute))]


def _definitions() -> tuple[set[str], dict[str, set[str]]]:
    """Every name defined in stmltm_nb/ and tests/ (functions, classes, assignments, keyword parameters), and for
    each class the members it defines (methods, class attributes, ``self.x`` assignments in its methods)."""
    names: set[str] = set()
    members: dict[str, set[str]] = {}
    for path in [*(ROOT / "stmltm_nb").rglob("*.py"), *(ROOT / "tests").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.update(a.arg for a in node.args.kwonlyargs + node.args.args)
            names.update(_assigned(node))
            if isinstance(node, ast.ClassDef):
                own = members.setdefault(node.name, set())
                for item in ast.walk(node):
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        own.add(item.name)
                    own.update(_assigned(item))
    return names, members


def test_the_page_has_the_three_recipes_each_with_files_and_tests():
    for title in ("## Add a memory backend", "## Add a consolidation policy", "## Add a notebook"):
        assert title in TEXT, title
        section = TEXT.split(title, 1)[1].split("\n## ", 1)[0]
        assert "Files to touch" in section and "Tests" in section, title


def test_the_path_finder_sees_the_paths():
    paths = _paths()
    assert "stmltm_nb/memory/backends.py" in paths and "notebooks/NN_slug.py" in paths and len(paths) >= 20


@pytest.mark.parametrize("path", _paths())
def test_every_path_on_the_page_exists(path):
    if "NN" in path:  # the template of a new notebook: its folder exists and a real one matches the pattern
        assert any((ROOT / path.split("NN", 1)[0]).glob("[0-9][0-9]_*.py")), path
        return
    assert (ROOT / path.rstrip("/")).exists(), f"CONTRIBUTING.md names {path}, which does not exist"


def test_every_code_name_on_the_page_is_defined():
    """A bare name must be defined somewhere; ``Class.member`` must be a member of that very class."""
    names, members = _definitions()
    cited = {c for c in CODE if NAME_RE.match(c) and c not in NOT_NAMES}
    assert {"register_backend", "RuleSpec", "ToyIA3", "Cartridge.impl", "RuleSpec.theta"} <= cited
    missing = sorted(c for c in cited if "." not in c and c not in names)
    missing += sorted(c for c in cited if "." in c and c.split(".")[1] not in members.get(c.split(".")[0], set()))
    assert not missing, f"CONTRIBUTING.md cites names the code does not define: {missing}"


def test_the_name_check_catches_a_member_of_the_wrong_class():
    _, members = _definitions()
    assert "impl" in members["Cartridge"] and "theta" in members["RuleSpec"]
    assert "theta" not in members["Cartridge"] and "impl" not in members["RuleSpec"]


def test_the_policy_recipe_works_as_written(monkeypatch):
    """Add a RuleSpec to RULES: the simulator runs it, the controller's config accepts its id, and it never beats
    the hindsight oracle."""
    from stmltm_nb.decision import online
    from stmltm_nb.decision.controller_config import ControllerConfig
    from stmltm_nb.decision.curves import load_curves
    from stmltm_nb.decision.policies import RulePolicy, oracle, scenarios, simulate, world_from_curves

    toy = online.RuleSpec("toy-eager", "eager ski rental (β = 0.5)", "ski", beta=0.5)
    monkeypatch.setitem(online.RULES, toy.id, toy)
    assert ControllerConfig(policy=toy.id).policy == toy.id
    with pytest.raises(ValueError, match="toy-eager"):
        ControllerConfig(policy="toy-missing")
    world = world_from_curves(load_curves())
    sc = scenarios(steps=120)[0]
    res = simulate(world, sc, RulePolicy(toy.id), toy.id)
    assert res.total >= oracle(world, sc).total - 1e-9 and res.policy == toy.id
