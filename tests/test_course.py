"""The course around the notebooks: the glossary in 00, links to it, and run-time notes on exercises.

Reads the jupytext sources (``notebooks/NN_*.py``) as text: no jupytext, no torch, no notebook execution.

- 00 holds a glossary cell: one ``<a id="g-NAME"></a>`` anchor per term. A term is not used in 00's markdown before
  that cell, except in the header cell (the notebook's title, summary and learning goals, which must name what the
  notebook is about).
- Notebooks 01–09 link a term at its first use as ``[text](00_overview.ipynb#g-NAME)``; every such anchor exists.
- Every exercise under "## Exercises" states its run time on 2 CPU cores as :data:`RUN_TIME` describes, and a hint.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
GLOSSARY_NB = "00_overview"

ANCHOR = re.compile(r'<a id="(g-[a-z0-9-]+)"></a>')
LINK = re.compile(r"\]\(00_overview\.ipynb#(g-[^)\s]*)\)")
# An exercise's run time on 2 CPU cores: "(≈ 2 min)", "(≈ 1–2 min)", "(≈ 45 min: trains a 400-step cartridge)",
# "(≈ 2 h: ...)". tests/test_prose.py strips the same notes before it looks for hand-typed measurements: they are
# estimates for the reader, not measured results.
RUN_TIME = re.compile(r"\(≈ \d+(?:–\d+)? (?:min|h)(?:: [^()]*)?\)")
HINT = "Hint:"

# How each glossary term is spotted in text (anchor → regular expression). Every anchor of 00 needs one.
TERMS: dict[str, str] = {
    "g-stm": r"\bSTM\b|short-term memory",
    "g-ltm": r"\bLTM\b|long-term memory",
    "g-consolidation": r"\bconsolidat(?:e|es|ed|ion|ions)\b",
    "g-cartridge": r"\bcartridges?\b",
    "g-kv-cache": r"\bKV cache",
    "g-context-distillation": r"context distillation",
    "g-teacher": r"\bteacher",
    "g-held-out": r"\bheld-out\b",
    "g-residual-stm": r"residual STM",
    "g-served-memory": r"served memory",
    "g-retrieval": r"\bretrieval\b|\bBM25\b",
    "g-c-ctx": r"\bc_ctx\b",
    "g-q-ctx": r"\bq_ctx\b",
    "g-c-upd": r"\bc_upd\b",
    "g-lambda": r"λ",
    "g-advantage": r"\bA\(n\)",
    "g-eta": r"η",
    "g-switching-inequality": r"switching (?:inequality|rule)|single inequality",
    "g-n-star": r"\bn\\?\*",
    "g-n-win": r"\bN_win\b",
    "g-n-max": r"\bN_max\b",
    "g-gates": r"\bG[1-6]\b|\bgates?\b",
    "g-tau": r"τ",
    "g-snr": r"\bSNR",
    "g-kl": r"\bKL\b",
    "g-chernoff": r"Chernoff",
    "g-m-star": r"\bm\\?\*",
    "g-pac-bayes": r"PAC-Bayes",
    "g-g-mdl": r"\bG_MDL\b",
    "g-prequential": r"prequential",
    "g-wilson": r"\bWilson\b",
    "g-cluster-bootstrap": r"bootstrap",
    "g-aicc": r"\bAICc?\b",
    "g-delta-nll": r"ΔNLL",
    "g-lambert-w": r"Lambert W",
    "g-ski-rental": r"ski[- ]rental",
    "g-eoq": r"\bEOQ\b",
    "g-lwf": r"\bLwF\b|Learning without Forgetting",
    "g-guard-rows": r"guard rows?",
    "g-off-path": r"off-path|off the teacher's path",
    "g-fast": r"STMLTM_FAST|\bFAST mode|\bfast mode",
}


def cells(src: Path) -> list[tuple[str, str]]:
    """(kind, text) per cell of a percent-format source; markdown text without its leading "# "."""
    out: list[tuple[str, list[str]]] = []
    for line in src.read_text().splitlines():
        if line.startswith("# %%"):
            out.append(("markdown" if "[markdown]" in line else "code", []))
        elif out:
            out[-1][1].append(line)
    result = []
    for kind, lines in out:
        if kind == "markdown":
            lines = [ln[2:] if ln.startswith("# ") else ln[1:] if ln.startswith("#") else ln for ln in lines]
        result.append((kind, "\n".join(lines).strip("\n")))
    return result


def markdown(src: Path) -> list[str]:
    return [text for kind, text in cells(src) if kind == "markdown"]


def by_stem(stem: str) -> Path:
    return next(s for s in SOURCES if s.stem == stem)


def glossary() -> tuple[int, list[str]]:
    """Index of 00's glossary cell among its markdown cells, and its anchors in order."""
    md = markdown(by_stem(GLOSSARY_NB))
    hits = [i for i, text in enumerate(md) if ANCHOR.search(text)]
    assert len(hits) == 1, f"{GLOSSARY_NB}: the glossary anchors must all be in one markdown cell, found in {hits}"
    return hits[0], ANCHOR.findall(md[hits[0]])


def prose(text: str) -> str:
    """Text a reader sees as words: without code spans, HTML tags, math and link targets."""
    for pattern in (r"`[^`]*`", r"<[^>]*>", r"\$\$.*?\$\$", r"\]\([^)]*\)"):
        text = re.sub(pattern, " ", text, flags=re.S)
    return text


def exercises(text: str) -> list[str]:
    """The numbered items of the "## Exercises" section in ``text`` (continuation lines joined)."""
    section = text.split("## Exercises", 1)[1]
    section = re.split(r"^#{1,6} ", section, maxsplit=1, flags=re.M)[0]
    items: list[str] = []
    for line in section.splitlines():
        if re.match(r"\d+\. ", line):
            items.append(line)
        elif items and line.strip():
            items[-1] += " " + line.strip()
    return items


def test_the_sources_are_the_course_and_its_appendix():
    assert [s.stem[:2] for s in SOURCES] == [f"{i:02d}" for i in range(11)]


def test_every_glossary_anchor_is_unique_and_has_a_pattern():
    _, anchors = glossary()
    assert len(anchors) == len(set(anchors)), "duplicate glossary anchors"
    assert set(anchors) == set(TERMS), (sorted(set(anchors) - set(TERMS)), sorted(set(TERMS) - set(anchors)))
    for anchor, pattern in TERMS.items():  # each entry uses its own term, so the pattern is not a typo
        entry = next(e for e in markdown(by_stem(GLOSSARY_NB))[glossary()[0]].split("\n- ") if anchor in e)
        assert re.search(pattern, entry.split("</a>", 1)[1]), (anchor, pattern)


def test_00_defines_its_terms_before_using_them():
    """Between the header cell and the glossary, 00's markdown uses no glossary term."""
    at, anchors = glossary()
    md = markdown(by_stem(GLOSSARY_NB))
    assert md[0].startswith(f"# {GLOSSARY_NB[:2]} · ")  # the header cell, the one exception
    for i, text in enumerate(md[1:at], start=1):
        used = [a for a in anchors if re.search(TERMS[a], prose(text))]
        assert not used, f"{GLOSSARY_NB} markdown cell {i} uses {used} before the glossary (cell {at})"


def test_the_glossary_comes_early_in_00():
    at, _ = glossary()
    assert at == 1, "the glossary is the first markdown cell after 00's header"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_glossary_links_point_at_existing_anchors(src):
    _, anchors = glossary()
    text = "\n".join(markdown(src))
    linked = LINK.findall(text) + (re.findall(r"\]\(#(g-[^)\s]*)\)", text) if src.stem == GLOSSARY_NB else [])
    missing = sorted(set(linked) - set(anchors))
    assert not missing, f"{src.stem} links to glossary anchors that 00 does not define: {missing}"
    if src.stem != GLOSSARY_NB:
        assert linked, f"{src.stem} links no glossary term"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_every_exercise_states_its_run_time_and_a_hint(src):
    text = "\n".join(markdown(src))
    items = exercises(text)
    assert items, f"{src.stem}: no numbered exercises under '## Exercises'"
    for item in items:
        assert RUN_TIME.search(item), f"{src.stem}: exercise without a run-time note like '(≈ 2 min)': {item[:80]!r}"
        assert HINT in item, f"{src.stem}: exercise without a hint: {item[:80]!r}"


def test_the_run_time_pattern():
    for ok in ("(≈ 1 min)", "(≈ 1–2 min)", "(≈ 45 min: trains a 400-step cartridge)", "(≈ 2 h: two cartridges)"):
        assert RUN_TIME.fullmatch(ok), ok
    for bad in ("(1 min)", "(≈ 1 minute)", "(≈ min)", "≈ 1 min"):
        assert not RUN_TIME.search(bad), bad


def test_the_model_disclosure_names_the_shipped_quantisation():
    """00 and 02 say which weights the default model is (the GGUF named in stmltm_nb/models.py) and that the Hub
    switch loads other weights."""
    models = (ROOT / "stmltm_nb" / "models.py").read_text()
    quant = re.search(r"SmolLM2-135M-Instruct\.(Q\w+)\.gguf", models)
    assert quant, "models.py no longer names the GGUF file"
    for stem in (GLOSSARY_NB, "02_stm_recall"):
        text = " ".join(" ".join(markdown(by_stem(stem))).split())
        assert quant[1] in text and "STMLTM_USE_HUB" in text and "float32" in text, stem


PLOTLY_MIME = "application/vnd.plotly.v1+json"


def _figure_cells(nb: dict) -> list[tuple[int, int, int]]:
    """(cell index, plotly figures, static PNG images) for every code cell that shows a plotly figure."""
    out = []
    for i, cell in enumerate(nb["cells"]):
        outs = cell.get("outputs", []) if cell["cell_type"] == "code" else []
        figs = sum(PLOTLY_MIME in o.get("data", {}) for o in outs)
        pngs = sum("image/png" in o.get("data", {}) and PLOTLY_MIME not in o.get("data", {}) for o in outs)
        if figs:
            out.append((i, figs, pngs))
    return out


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_every_plotly_figure_has_a_static_image_beside_it(src):
    """The repository page and nbviewer run no JavaScript: each plotly output needs a PNG output in its cell."""
    import json

    nb = json.loads(src.with_suffix(".ipynb").read_text())
    missing = [i for i, figs, pngs in _figure_cells(nb) if pngs < figs]
    assert not missing, f"{src.stem}: cells {missing} show a plotly figure without a static image (rebuild with " \
                        "python -m tools.notebooks, which sets STMLTM_STATIC_FIGURES=1)"


def test_the_static_image_finder_counts_what_it_should():
    fig = {"output_type": "display_data", "data": {PLOTLY_MIME: {}, "text/html": ""}}
    png = {"output_type": "display_data", "data": {"image/png": "iVBOR"}}
    nb = {"cells": [{"cell_type": "code", "outputs": [fig, png]}, {"cell_type": "code", "outputs": [fig]},
                    {"cell_type": "markdown", "source": ""}, {"cell_type": "code", "outputs": [png]}]}
    assert _figure_cells(nb) == [(0, 1, 1), (1, 1, 0)]


def test_the_static_renderer_adds_a_png_output_of_its_own(monkeypatch):
    import plotly.graph_objects as go
    import plotly.io as pio

    from stmltm_nb.apps import viz

    shown = []
    monkeypatch.setattr(pio, "to_image", lambda fig, **kw: b"\x89PNG\r\n\x1a\n" + repr(sorted(kw.items())).encode())
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    before = pio.renderers.default
    try:
        viz.setup_plotly(static=False)
        assert viz.STATIC_RENDERER not in pio.renderers.default
        viz.setup_plotly(static=True)
        assert pio.renderers.default.endswith("+" + viz.STATIC_RENDERER)
        pio.renderers[viz.STATIC_RENDERER].render(go.Figure(go.Scatter(y=[1, 2])).to_dict())
    finally:
        pio.renderers.default = before
    assert len(shown) == 1 and shown[0].format == "png"
    assert f"('height', {viz.STATIC_SIZE[1]})".encode() in shown[0].data


GATE_SYMBOLS = {"G1": r"\bG1\b", "G2": r"\bG2\b", "G3": r"\bG3\b", "G4": r"\bG4\b", "G5": r"\bG5\b", "G6": r"\bG6\b",
                "τ": "τ", "γ": "γ"}


def test_04_defines_the_gate_symbols_before_it_uses_them():
    """Notebook 04 uses the gates before 05 puts them in the rule: its 04.0 cell defines each symbol, and no cell
    before it (the header included) uses one; 04 does not list 05 as a prerequisite."""
    src = by_stem("04_learning_signal")
    all_cells = cells(src)
    at = next(i for i, (kind, text) in enumerate(all_cells) if kind == "markdown" and "## 04.0" in text)
    for name, pattern in GATE_SYMBOLS.items():
        assert re.search(pattern, all_cells[at][1]), f"04.0 does not define {name}"
        used = [i for i, (_, text) in enumerate(all_cells[:at]) if re.search(pattern, text)]
        assert not used, f"04 uses {name} in cells {used}, before 04.0 (cell {at}) defines it"
    header = all_cells[0][1]
    assert "**Prerequisites:**" in header and " 05" not in header.split("**Prerequisites:**")[1].split("(")[0]


def test_the_solutions_notebook_answers_every_exercise():
    """notebooks/solutions.py has an answer for exercise k of notebook NN, marked **NN.k, in the course's order."""
    text = (ROOT / "notebooks" / "solutions.py").read_text()
    wanted = [f"**{src.stem[:2]}.{k}" for src in SOURCES for k in range(1, len(exercises("\n".join(markdown(src)))) + 1)]
    assert len(wanted) >= 20
    missing = [w for w in wanted if w not in text]
    assert not missing, f"notebooks/solutions.py has no answer for {missing}"
    positions = [text.index(w) for w in wanted]
    assert positions == sorted(positions), "the answers follow the notebooks' order"
    assert "FAST = notebook_setup()" in text and "load_model(" not in text  # runs without the model, under nbval
