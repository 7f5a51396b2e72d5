"""An installed (non-editable) wheel carries the shipped data: build it offline from a copy of the checkout,
install it into a throw-away venv, and load the facts and the measured curves from a folder outside the checkout.
The wheel holds the package and nothing of the development tooling (``tools/``), and every module of it imports
there, without the checkout."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "data", "stmltm_nb", "tools")
CHECK = """
import sys
import stmltm_nb
from stmltm_nb.decision.curves import load_curves
from stmltm_nb.memory.facts import general_text, load_facts
from stmltm_nb.shipped import data_dir
print(stmltm_nb.__file__)
print(data_dir())
print(len(load_facts()), len(load_facts(contradictions=True)), bool(general_text().strip()))
print(sorted(load_curves()))
print(sorted(p.name for p in data_dir().iterdir()))
print("torch" in sys.modules)
"""


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built offline from a copy of this checkout (tools/ included in the copy, as in a clone)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        copy = shutil.copytree if path.is_dir() else shutil.copy2
        copy(path, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if path.is_dir() else {}))
    built = _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index",
                  "-w", str(tmp / "dist")])
    wheels = list((tmp / "dist").glob("stmltm_nb-*.whl"))
    assert built.returncode == 0 and wheels, f"the wheel does not build: {built.stderr[-500:]}"
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The Python of a venv holding the wheel built from this checkout (and nothing else of stmltm_nb)."""
    tmp = tmp_path_factory.mktemp("venv")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)]).check_returncode()
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
          str(wheel)]).check_returncode()
    # numpy and sympy from this environment, without its editable install of stmltm_nb (a path line in a .pth
    # file adds the folder, not the .pth files inside it)
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(purelib) / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_installed_wheel_loads_the_shipped_data_outside_the_checkout(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("STMLTM_DATA", "PYTHONPATH")}
    out = _run([str(installed), "-c", CHECK], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    module, where, counts, curves, files, torch_loaded = out.stdout.strip().splitlines()
    assert Path(module).is_relative_to(installed.parent.parent), "imported the checkout, not the wheel"
    assert Path(where).parts[-2:] == ("stmltm_nb", "_data")
    n_facts, n_all, has_text = counts.split()
    assert int(n_facts) == 208 and int(n_all) > 208 and has_text == "True"
    assert all(k in curves for k in ("'recall'", "'cost'", "'comparison'"))
    for name in ("facts.jsonl", "general_text.txt", "measured_curves.json", "controller_events.jsonl", "README.md"):
        assert f"'{name}'" in files, name
    assert "build_facts.py" not in files
    assert torch_loaded == "False"


def test_the_wheel_holds_the_package_and_no_tooling(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"stmltm_nb", next(t for t in tops if t.endswith(".dist-info"))}, tops
    assert not [n for n in names if n.endswith("readme_blocks.md") or "/notebooks.py" in n or "/prose.py" in n]
    assert "stmltm_nb/_data/measured_curves.json" in names
    assert "stmltm_nb/_data/teacher_targets/manifest.json" in names  # the default model's shipped teacher targets


IMPORT_ALL = """
import importlib, importlib.util, pathlib
import stmltm_nb
root = pathlib.Path(stmltm_nb.__file__).parent  # the wheel's copy (subpackages are namespace packages: walk files)
names = sorted(".".join(("stmltm_nb", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
               for p in root.rglob("*.py") if "__pycache__" not in p.parts and p.parent != root / "_data")
names = [n for n in names if n != "stmltm_nb"]
bad = []
for n in names:
    try:
        importlib.import_module(n)
    except Exception as e:
        bad.append(f"{n}: {type(e).__name__}: {e}")
print(" ".join(names))
print(bad)
print(importlib.util.find_spec("tools") is None and "site-packages" in str(root))
"""


def test_installed_wheel_imports_every_module_without_the_checkout(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("STMLTM_DATA", "PYTHONPATH")}
    out = subprocess.run([str(installed), "-c", IMPORT_ALL], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    names, bad, no_tools = out.stdout.strip().splitlines()[-3:]
    pkg = ROOT / "stmltm_nb"
    want = {".".join(("stmltm_nb", *p.relative_to(pkg).with_suffix("").parts)).removesuffix(".__init__")
            for p in pkg.rglob("*.py") if "__pycache__" not in p.parts} - {"stmltm_nb"}
    assert bad == "[]", bad  # an import error first: it also hides the subpackage's modules from the walk
    assert set(names.split()) == want, "the wheel's modules differ from the checkout's"
    assert no_tools == "True", "tools/ is importable from the installed wheel, or stmltm_nb came from the checkout"
