"""Build the notebook sequence: jupytext percent sources (``notebooks/NN_slug.py``) → executed ``.ipynb``.

``build()`` converts each source, executes it headless (nbclient, kernel cwd = ``notebooks/``), strips widget
state (``metadata.widgets``), keeps execution counts, and writes the ``.ipynb`` next to the source (or into
``out_dir``). ``drift()`` reports sources whose committed ``.ipynb`` has different cells (a regenerate-then-diff
check that does not trust file timestamps).
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def notebook_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "notebooks"


def sources(folder: Path | None = None) -> list[Path]:
    return sorted((folder or notebook_dir()).glob("[0-9][0-9]_*.py"))


def strip_widget_state(nb) -> None:
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            data.pop("application/vnd.jupyter.widget-state+json", None)


def to_notebook(src: Path):
    import jupytext

    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def build(paths: list[Path] | None = None, execute: bool = True, fast: bool = False, out_dir: Path | None = None,
          timeout: int = 1800) -> list[tuple[Path, float]]:
    """Convert (and execute) notebooks; returns (written path, seconds) per notebook."""
    import nbformat
    from nbclient import NotebookClient

    done = []
    for src in paths or sources():
        t0 = time.perf_counter()
        nb = to_notebook(src)
        if execute:
            env_fast = os.environ.get("STMLTM_FAST")
            os.environ["STMLTM_FAST"] = "1" if fast else ""
            try:
                NotebookClient(nb, timeout=timeout, kernel_name="python3",
                               resources={"metadata": {"path": str(src.parent)}}).execute()
            finally:
                if env_fast is None:
                    os.environ.pop("STMLTM_FAST", None)
                else:
                    os.environ["STMLTM_FAST"] = env_fast
        strip_widget_state(nb)
        target = (out_dir or src.parent) / (src.stem + ".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(target))
        done.append((target, time.perf_counter() - t0))
        print(f"{target.name}: {done[-1][1]:.0f} s", flush=True)
    return done


def drift(folder: Path | None = None) -> list[str]:
    """Names of notebooks whose ``.ipynb`` cell sources differ from their ``.py`` source (or are missing)."""
    import nbformat

    bad = []
    for src in sources(folder):
        ipynb = src.with_suffix(".ipynb")
        if not ipynb.exists():
            bad.append(f"{ipynb.name} (missing)")
            continue
        want = [(c.cell_type, c.source.strip()) for c in to_notebook(src).cells]
        have = [(c.cell_type, c.source.strip()) for c in nbformat.read(str(ipynb), as_version=4).cells]
        if want != have:
            bad.append(ipynb.name)
    return bad


def sync_sources(paths: list[Path] | None = None) -> list[str]:
    """Copy each ``.py`` source's cell text into its committed ``.ipynb``, keeping the outputs, for edits that
    cannot change a result (a renamed import). Refuses a notebook whose cell count or types differ: that one
    must be re-executed (:func:`build`). Returns the names of the notebooks it rewrote."""
    import nbformat

    done = []
    for src in paths or sources():
        ipynb = src.with_suffix(".ipynb")
        want = to_notebook(src).cells
        nb = nbformat.read(str(ipynb), as_version=4)
        if [c.cell_type for c in want] != [c.cell_type for c in nb.cells]:
            raise ValueError(f"{ipynb.name}: cells were added or removed; re-run it with `stmltm notebooks`")
        changed = False
        for new, old in zip(want, nb.cells):
            if new.source.strip() != old.source.strip():
                old.source, changed = new.source, True
        if changed:
            nbformat.write(nb, str(ipynb))
            done.append(ipynb.name)
    return done
