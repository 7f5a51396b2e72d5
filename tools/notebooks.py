"""Build the notebook sequence: jupytext percent sources (``notebooks/NN_slug.py``) → executed ``.ipynb``.

Development tooling (``tools/``, not shipped): ``python -m tools.notebooks`` (``make notebooks``; ``--readme``:
``make readme``), options in :func:`build_parser`.

``build()`` converts each source, executes it headless (nbclient, kernel cwd = ``notebooks/``), strips widget
state (``metadata.widgets``), keeps execution counts, and writes the ``.ipynb`` next to the source (or into
``out_dir``). ``drift()`` reports sources whose committed ``.ipynb`` has different cells (a regenerate-then-diff
check that does not trust file timestamps).

Markdown cells with ``{{ expr }}`` placeholders are rendered from the data on conversion
(:mod:`tools.prose`); the template stays in the cell's ``metadata["stmltm"]["template"]``. A full
in-place build records each notebook's run time in ``notebooks/runtimes.json`` (which the headers and the README's
notebook table render) and re-renders the README's marked blocks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from tools.prose import ROOT, RUNTIMES, has_placeholders, load_runtimes, namespace, render
from tools.readme import update_readme


def notebook_dir() -> Path:
    return ROOT / "notebooks"


SOLUTIONS = "solutions.py"  # the exercises' worked answers: built and checked like the sequence, outside its numbering


def sources(folder: Path | None = None, with_solutions: bool = False) -> list[Path]:
    """The sequence's sources (``NN_slug.py``), and with ``with_solutions`` the solutions notebook after them."""
    folder = folder or notebook_dir()
    out = sorted(folder.glob("[0-9][0-9]_*.py"))
    if with_solutions and (folder / SOLUTIONS).is_file():
        out.append(folder / SOLUTIONS)
    return out


def strip_widget_state(nb) -> None:
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            data.pop("application/vnd.jupyter.widget-state+json", None)


def template_of(cell) -> str | None:
    """The template a rendered markdown cell was made from (None: plain text)."""
    return cell.get("metadata", {}).get("stmltm", {}).get("template")


def render_cells(nb, ns=None) -> None:
    """Render every markdown cell that has placeholders (or a kept template) from the data, keeping the template
    in ``metadata["stmltm"]["template"]``."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        template = template_of(cell) or (cell.source if has_placeholders(cell.source) else None)
        if template is None:
            continue
        ns = namespace() if ns is None else ns
        cell.metadata.setdefault("stmltm", {})["template"] = template
        cell.source = render(template, ns)


def to_notebook(src: Path, ns=None):
    """The notebook of a jupytext source, its markdown templates rendered from the data."""
    import jupytext

    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    render_cells(nb, ns)
    return nb


def notebook_seconds(nb) -> float | None:
    """Run time of an executed notebook from nbclient's cell timestamps: last reply − first input (None when
    the cells carry no timestamps)."""
    times = [c.metadata.get("execution", {}) for c in nb.cells if c.cell_type == "code"]
    start = [t["iopub.execute_input"] for t in times if "iopub.execute_input" in t]
    end = [t["shell.execute_reply"] for t in times if "shell.execute_reply" in t]
    if not start or not end:
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (max(map(parse, end)) - min(map(parse, start))).total_seconds()


def record_runtimes(seconds: dict[str, float], source: str, path: Path = RUNTIMES) -> None:
    """Merge measured seconds per notebook (by stem) into ``notebooks/runtimes.json``."""
    data = load_runtimes(path)
    data.setdefault("note", "Seconds per notebook of the last full (non-fast) `make notebooks` build: last cell "
                            "reply minus first cell input, from nbclient's cell timestamps (kernel start excluded). "
                            "Written by build(); `source` says where each value came from.")
    for stem, s in seconds.items():
        data.setdefault("seconds", {})[stem] = round(s, 1)
        data.setdefault("source", {})[stem] = source
    data["seconds"] = dict(sorted(data["seconds"].items()))
    data["source"] = dict(sorted(data["source"].items()))
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def build(paths: list[Path] | None = None, execute: bool = True, fast: bool = False, out_dir: Path | None = None,
          timeout: int = 1800) -> list[tuple[Path, float]]:
    """Convert (and execute) notebooks; returns (written path, seconds) per notebook. A full (not ``fast``)
    build in place records the run times (``notebooks/runtimes.json``), re-renders the notebook's templates with
    them and re-renders the README's marked blocks."""
    import nbformat
    from nbclient import NotebookClient

    done = []
    record = execute and not fast and out_dir is None
    for src in paths or sources(with_solutions=True):
        t0 = time.perf_counter()
        nb = to_notebook(src)
        if execute:
            env_fast = os.environ.get("STMLTM_FAST")
            os.environ["STMLTM_FAST"] = "1" if fast else ""
            os.environ["STMLTM_STATIC_FIGURES"] = "1"  # a PNG beside every plotly figure (test_course checks)
            try:
                NotebookClient(nb, timeout=timeout, kernel_name="python3",
                               resources={"metadata": {"path": str(src.parent)}}).execute()
            finally:
                if env_fast is None:
                    os.environ.pop("STMLTM_FAST", None)
                else:
                    os.environ["STMLTM_FAST"] = env_fast
            secs = notebook_seconds(nb)
            if record and secs is not None:
                record_runtimes({src.stem: secs}, f"build {datetime.now().date().isoformat()}")
                render_cells(nb)  # the header renders the run time just recorded
        strip_widget_state(nb)
        target = (out_dir or src.parent) / (src.stem + ".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(target))
        done.append((target, time.perf_counter() - t0))
        print(f"{target.name}: {done[-1][1]:.0f} s", flush=True)
    if record and done and update_readme():
        print("README.md: measured blocks re-rendered", flush=True)
    return done


def _cell_key(cell) -> tuple:
    return cell.cell_type, cell.source.strip(), template_of(cell)


def drift(folder: Path | None = None) -> list[str]:
    """Names of notebooks whose ``.ipynb`` cells differ from their ``.py`` source rendered from the current data
    (text or kept template), or that are missing."""
    import nbformat

    bad, ns = [], namespace()
    for src in sources(folder, with_solutions=True):
        ipynb = src.with_suffix(".ipynb")
        if not ipynb.exists():
            bad.append(f"{ipynb.name} (missing)")
            continue
        want = [_cell_key(c) for c in to_notebook(src, ns).cells]
        have = [_cell_key(c) for c in nbformat.read(str(ipynb), as_version=4).cells]
        if want != have:
            bad.append(ipynb.name)
    return bad


def _copy_text(new, old) -> bool:
    """Give ``old`` the text (and kept template) of ``new``, keeping its outputs; True when anything changed."""
    changed = False
    if new.source.strip() != old.source.strip():
        old.source, changed = new.source, True
    if template_of(new) != template_of(old):
        old.metadata.pop("stmltm", None)
        if template_of(new) is not None:
            old.metadata["stmltm"] = {"template": template_of(new)}
        changed = True
    return changed


def _merge_cells(want: list, have: list) -> tuple[list, int]:
    """``have`` (executed cells) aligned on ``want`` (the source's cells): unchanged and edited cells keep their
    outputs, cells new in the source come in unexecuted, removed ones go. Returns (cells, new code cells)."""
    import difflib

    def sim(a, b) -> float:
        return difflib.SequenceMatcher(None, a.source, b.source, autojunk=False).ratio()

    out, fresh = [], 0
    ops = difflib.SequenceMatcher(None, [_cell_key(c)[:2] for c in have], [_cell_key(c)[:2] for c in want],
                                  autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in ops:
        olds, k = have[i1:i2], 0
        for new in want[j1:j2]:
            hit = next((i for i in range(k, len(olds)) if olds[i].cell_type == new.cell_type
                        and (tag == "equal" or sim(olds[i], new) > 0.5)), None)
            if hit is None:
                out.append(new)
                fresh += new.cell_type == "code"
            else:
                _copy_text(new, olds[hit])
                out.append(olds[hit])
                k = hit + 1
    return out, fresh


def sync_sources(paths: list[Path] | None = None, new_cells: bool = False) -> list[str]:
    """Copy each ``.py`` source's cell text (markdown rendered from the data) into its committed ``.ipynb``,
    keeping the outputs, for edits that cannot change a result (a renamed import, prose). Refuses a notebook whose
    cell count or types differ: that one must be re-executed (:func:`build`); with ``new_cells`` it inserts the
    new cells unexecuted instead (to be executed later) and names them. Returns the notebooks it rewrote."""
    import uuid

    import nbformat

    done, ns = [], namespace()
    for src in paths or sources(with_solutions=True):
        ipynb = src.with_suffix(".ipynb")
        want = to_notebook(src, ns).cells
        nb = nbformat.read(str(ipynb), as_version=4)
        fresh = 0
        if [c.cell_type for c in want] == [c.cell_type for c in nb.cells]:
            changed = any([_copy_text(new, old) for new, old in zip(want, nb.cells)])
        elif new_cells:
            cells, fresh = _merge_cells(want, nb.cells)
            for c in cells:
                c.setdefault("id", uuid.uuid4().hex[:8])
            changed, nb.cells = True, cells
        else:
            raise ValueError(f"{ipynb.name}: cells were added or removed; re-run it with `python -m tools.notebooks` (or "
                             "`--sources-only --new-cells` to insert them unexecuted)")
        if changed:
            nbformat.write(nb, str(ipynb))
            done.append(ipynb.name + (f" ({fresh} new code cell(s) not executed yet)" if fresh else ""))
    return done


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.notebooks",
                                description="Execute the notebook sequence headless (run from the checkout's root).")
    p.add_argument("--out", help="output folder (default: next to the sources, in place)")
    p.add_argument("--only", help="comma-separated prefixes, e.g. 00,05")
    p.add_argument("--fast", action="store_true", help="STMLTM_FAST=1 for the kernels")
    p.add_argument("--no-execute", action="store_true", help="convert only")
    p.add_argument("--sources-only", action="store_true",
                   help="copy the .py cell text into the committed .ipynb, keeping outputs (edits that change no result); "
                        "markdown {{ placeholders }} are rendered from the data")
    p.add_argument("--new-cells", action="store_true",
                   help="with --sources-only: insert cells new in the source unexecuted (run them later)")
    p.add_argument("--readme", action="store_true",
                   help="re-render the README's measured blocks from the data files (runs no notebook)")
    return p


def main(argv: list[str] | None = None) -> int:
    from stmltm_nb.env import silence_foreign_deprecations
    from tools.prose import TemplateError

    silence_foreign_deprecations()
    args = build_parser().parse_args(argv)
    srcs = sources(notebook_dir(), with_solutions=True)
    if args.only:
        srcs = [s for s in srcs if any(s.name.startswith(o) for o in args.only.split(","))]
    try:
        if args.readme:
            print("README.md: measured blocks re-rendered" if update_readme() else "README.md already matches the data")
            return 0
        if args.sources_only or args.new_cells:
            print("\n".join(sync_sources(srcs, new_cells=args.new_cells))
                  or "every notebook's cells already match its source")
            return 0
    except (TemplateError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    build(srcs, execute=not args.no_execute, fast=args.fast, out_dir=Path(args.out) if args.out else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
