"""The course as a static site: the executed notebooks (``notebooks/*.ipynb``, outputs as committed, nothing is
re-run) rendered by Sphinx with MyST-NB and the Book theme, the builder of the Executable Books project (it works
offline, unlike a theme fetched at build time). ``make book`` → ``_build/book/html/index.html``.

The source tree is assembled in ``_build/book/src``: an index page (the README's opening and the table of contents),
the eleven notebooks in order (00–09 and the appendix 10), the solutions notebook, and ``notebooks/figures``. Links between notebooks
(``00_overview.ipynb#g-…``) become links between pages. Development tooling (``tools/``, not shipped).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tools.notebooks import notebook_dir, sources

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build" / "book"

CONF = '''project = "stmltm-nb: when should an LLM consolidate short-term memory into a long-term cartridge?"
author = "stmltm-nb"
extensions = ["myst_nb"]
nb_execution_mode = "off"  # the committed outputs are the course's; the build runs no notebook
nb_mime_priority_overrides = [("html", "image/png", 0)]  # the static image first: pages need no kernel or JS
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
html_theme = "sphinx_book_theme"
html_title = "stmltm-nb"
html_theme_options = {"show_toc_level": 2}
exclude_patterns = ["_build"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]
'''


NB_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:\d\d_[a-z0-9_]+)|solutions)\.ipynb(#[^)\s]*)?\)")


def link_pages(text: str) -> str:
    """Links between notebooks (``[STM](00_overview.ipynb#g-stm)``) as HTML links between the site's pages
    (``<a href="00_overview.html#g-stm">STM</a>``): the glossary's anchors are HTML ids, which Sphinx's own
    cross-references do not see."""
    return NB_LINK.sub(lambda m: f'<a href="{m.group(2)}.html{m.group(3) or ""}">{m.group(1)}</a>', text)


def pages() -> list[Path]:
    """The notebooks the site shows, in course order (the sequence, then the solutions)."""
    return [src.with_suffix(".ipynb") for src in sources(notebook_dir(), with_solutions=True)]


def assemble(out: Path = BUILD / "src") -> Path:
    """Write the Sphinx source tree under ``out`` (replaced) and return it."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "conf.py").write_text(CONF)
    nbs = pages()
    missing = [p.name for p in nbs if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"executed notebooks missing: {missing} (run `make notebooks` first)")
    for nb in nbs:
        data = json.loads(nb.read_text())
        for cell in data["cells"]:
            if cell["cell_type"] == "markdown":
                text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                cell["source"] = link_pages(text)
        (out / nb.name).write_text(json.dumps(data, ensure_ascii=False))
    figures = notebook_dir() / "figures"
    if figures.is_dir():
        shutil.copytree(figures, out / "figures")
    intro = ROOT / "README.md"
    lead = intro.read_text().split("\n## ", 1)[0] if intro.is_file() else "# stmltm-nb\n"
    lead = "\n".join(line for line in lead.splitlines() if "badge" not in line)  # badges point off-site
    lead = re.sub(r"\[([^\]]+)\]\(#[^)]+\)", r"\1", lead)  # links to README sections: plain text here
    toc = "\n".join(p.stem for p in nbs)
    (out / "index.md").write_text(f"{lead}\n\n```{{toctree}}\n:maxdepth: 1\n:caption: The course\n\n{toc}\n```\n")
    return out


def build(out: Path = BUILD) -> Path:
    """Assemble and build the HTML site; returns the folder holding ``index.html``."""
    src = assemble(out / "src")
    html = out / "html"
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-E", str(src), str(html)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"sphinx-build failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    warnings = [ln for ln in proc.stderr.splitlines() if "WARNING" in ln]
    if warnings:
        print("\n".join(warnings[:40]), file=sys.stderr)
    return html


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.book", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=BUILD, help="build folder (default: _build/book)")
    args = ap.parse_args(argv)
    html = build(args.out)
    print(f"site: {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
