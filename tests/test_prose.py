"""Prose that cannot drift: notebook text and the README's measured blocks are rendered from the data
(``tools.prose``, ``tools.readme``), and these checks fail when a committed text disagrees with the data files.
No torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from stmltm_nb.decision.curves import half_recall_n
from tools.notebooks import (
    _merge_cells,
    build_parser,
    record_runtimes,
    sources,
    sync_sources,
    template_of,
    to_notebook,
)
from tools.prose import (
    TemplateError,
    evaluate,
    load_runtimes,
    namespace,
    render,
)
from tools.readme import README, readme_blocks, readme_templates, render_readme

ROOT = Path(__file__).resolve().parents[1]
SRCS = sources()
NS = namespace()


def _md(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


# ---- (a) the renderer ---------------------------------------------------------------------------------------

TOY = {"curves": {"n": 64, "x": 0.71875, "rows": [{"v": 2.5}], "name": "hyperbolic", "zero": 0, "none": None},
       "runtimes": {"00_overview": 70.8, "03_cartridge_ltm": 312.6, "04_learning_signal": 2.8}, "gone": None}


@pytest.mark.parametrize("text,want", [
    ("{{ curves.n }} facts", "64 facts"),
    ("{{ curves.x :.2f }}", "0.72"),
    ("{{ curves.x * curves.n :.0f }}/{{ curves['n'] }}", "46/64"),
    ("{{ curves.rows[0].v - 1 :+.1f }}", "+1.5"),
    ("{{ curves.rows[-1]['v'] // 1 }}", "2.0"),
    ("{{ round(curves.x, 1) }} {{ max(1, curves.n) }} {{ abs(-3) }} {{ len(curves.rows) }}", "0.7 64 3 1"),
    ("{{ curves.x :.0% }}", "72%"),
    ("{{ curves.name }}", "hyperbolic"),
    ("{{ runtimes['00_overview'] :minutes }}; {{ runtimes['03_cartridge_ltm'] :minutes }}; "
     "{{ runtimes['04_learning_signal'] :minutes }}", "about 1 minute; about 5 minutes; under 1 minute"),
    ("{{ runtimes['03_cartridge_ltm'] :min }} / {{ runtimes['04_learning_signal'] :min }}", "≈ 5.2 / < 1"),
    ("{{ 0.001 :sci }} {{ 0.02 :sci }}", "1e-3 2e-2"),
    ("no placeholder: 0.72 stays", "no placeholder: 0.72 stays"),
    ("{{ curves.x :opt.2f }} / {{ curves.none :opt+.2f }} / {{ curves.zero :opt+.1f }}", "0.72 / not measured / +0.0"),
])
def test_render(text, want):
    assert render(text, TOY) == want


@pytest.mark.parametrize("expr,why", [
    ("__import__('os')", "Call is not allowed"),
    ("curves.n ** 2", "BinOp is not allowed"),
    ("curves.n > 3", "Compare is not allowed"),
    ("[1, 2]", "List is not allowed"),
    ("lambda: 1", "Lambda is not allowed"),
    ("curves.x if curves.n else 0", "IfExp is not allowed"),
    ("'abc'", "Constant is not allowed"),
    ("curves.name * 1000", "arithmetic needs numbers"),
    ("round(curves.x, ndigits=1)", "Call is not allowed"),
    ("curves.n.real", "cannot look up 'real'"),
    ("curves[1:2]", "Slice is not allowed"),
    ("curves.n / curves.zero", "division by zero"),
    ("curves.n +", "not an expression"),
])
def test_bad_expressions_are_clear_errors(expr, why):
    with pytest.raises(TemplateError, match=re.escape(why)):
        evaluate(expr, TOY)


def test_missing_keys_name_the_placeholder():
    with pytest.raises(TemplateError, match=r"\{\{ curves\.signal\.snr \}\}: no key 'signal' in curves"):
        render("SNR {{ curves.signal.snr }}", TOY)
    with pytest.raises(TemplateError, match=r"\{\{ curves\.rows\[3\]\.v \}\}: index 3 out of range"):
        render("{{ curves.rows[3].v }}", TOY)
    with pytest.raises(TemplateError, match="unknown name 'curvs'"):
        render("{{ curvs.n }}", TOY)
    with pytest.raises(TemplateError, match="data source 'gone' is missing"):
        render("{{ gone.n }}", TOY)
    with pytest.raises(TemplateError, match="format '.2f'"):
        render("{{ curves.name :.2f }}", TOY)


def test_the_real_namespace_names_the_missing_key():
    with pytest.raises(TemplateError, match="no key 'no_such_key' in curves.signal"):
        render("{{ curves.signal.no_such_key }}", NS)


def test_readme_blocks_and_templates_must_match():
    text = "a\n<!-- stmltm:begin x -->\nold\n<!-- stmltm:end x -->\nb"
    assert render_readme(text, TOY, {"x": "n = {{ curves.n }}"}) == text.replace("old", "n = 64")
    with pytest.raises(TemplateError, match="differ"):
        render_readme(text, TOY, {"y": "n"})


def test_n_max_is_the_half_recall_size_of_the_best_fit():
    from stmltm_nb.decision.curves import recall_model_from

    fits = {f["model"]: f for f in NS["curves"]["recall"]["fits"]}
    assert NS["n_max"] == half_recall_n(NS["curves"], NS["curves"]["recall"]["best_fit"])

    for fam in fits:
        q = recall_model_from(NS["curves"], fam)
        assert q(half_recall_n(NS["curves"], fam)) == pytest.approx(q(0.0) / 2, rel=1e-6), fam


# ---- (b) committed notebooks re-render from the current data ------------------------------------------------

@pytest.mark.parametrize("src", SRCS, ids=lambda p: p.stem)
def test_committed_markdown_renders_from_current_data(src):
    nb = nbformat.read(str(src.with_suffix(".ipynb")), as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        template = template_of(cell)
        if template is None:
            assert "{{" not in cell.source, f"{src.stem}: an unrendered placeholder: {cell.source[:80]!r}"
            continue
        assert render(template, NS) == cell.source, (
            f"{src.stem}: the committed text differs from its template rendered on the current data; "
            f"run `python -m tools.notebooks --sources-only --only {src.stem[:2]}`")


@pytest.mark.parametrize("src", SRCS, ids=lambda p: p.stem)
def test_source_templates_equal_the_notebook_templates(src):
    want = [template_of(c) for c in to_notebook(src, NS).cells if c.cell_type == "markdown"]
    nb = nbformat.read(str(src.with_suffix(".ipynb")), as_version=4)
    assert want == [template_of(c) for c in nb.cells if c.cell_type == "markdown"]


def test_runtimes_cover_every_notebook():
    rt = load_runtimes()
    assert rt.get("note") and set(rt["seconds"]) == {s.stem for s in sources(with_solutions=True)}
    assert all(v > 0 for v in rt["seconds"].values()) and set(rt["source"]) == set(rt["seconds"])


HAND_TYPED_HEADERS: set[str] = set()  # notebooks whose header run time is still hand-typed (none)


@pytest.mark.parametrize("src", [s for s in SRCS if s.stem[:2] not in HAND_TYPED_HEADERS], ids=lambda p: p.stem)
def test_header_runtime_is_rendered_from_runtimes(src):
    first = template_of(to_notebook(src, NS).cells[0]) or ""
    assert f'**Runtime:** {{{{ runtimes["{src.stem}"] :minutes }}}}' in first


# ---- (c) the README's marked blocks ------------------------------------------------------------------------

def test_readme_blocks_equal_their_rendering():
    text = README.read_text()
    assert set(readme_blocks(text)) == set(readme_templates()) >= {"notebooks", "measured", "comparison"}
    for name, body in readme_blocks(render_readme(text, NS)).items():
        assert readme_blocks(text)[name] == body, f"README block {name!r} is stale: run `make readme`"


def test_readme_runtime_column_is_rendered_for_every_notebook():
    table = readme_templates()["notebooks"]
    for src in SRCS:
        assert f'runtimes["{src.stem}"]' in table, src.stem


# ---- (d) the drifts of issue #15 stay fixed -----------------------------------------------------------------

def _texts(prefix: str) -> list[str]:
    src = next(s for s in SRCS if s.stem.startswith(prefix))
    return [src.read_text(), _md(src.with_suffix(".ipynb"))]


@pytest.mark.parametrize("prefix,phrase", [("00", "200 facts"), ("04", "B_simple grows"), ("04", "about twice"),
                                           ("06", "23–33"), ("06", "about 9 minutes")])
def test_drifted_statements_are_gone(prefix, phrase):
    for text in _texts(prefix):
        assert phrase not in text


def test_09_no_longer_claims_the_model_finds_contradictions():
    for text in _texts("09"):
        flat = " ".join(text.split())
        assert not re.search(r"found.{0,80}approximately|approximately.{0,80}found", flat)
    g = NS["curves"]["governance"]
    assert g["model_true_positives"] < g["contradiction_pairs"], "09's summary says the model-based detector misses"


def test_claims_in_words_still_hold_on_the_data():
    """Directions said in words, not rendered: re-check them whenever the data changes."""
    sig = NS["curves"]["signal"]
    assert sig["per_item_after_training"]["b_simple"] < sig["per_item_at_init"]["b_simple"]  # 04: "falls"
    assert sig["per_item_after_training"]["snr_m"] > sig["per_item_at_init"]["snr_m"]  # 04: "rises"
    a, b = sig["per_item_at_init"], sig["per_item_after_training"]  # 04: the noise shrank faster than the signal
    assert b["trace_cov"] / a["trace_cov"] < b["mean_sq_norm"] / a["mean_sq_norm"]
    assert sig["m_snr_tau2"] > sig["m_items"] >= sig["per_item_at_init"]["b_simple"]  # 04: τ=2 asks more; τ=1 suffices
    # 03's summary no longer states a direction in words: it renders versus_text (above / below / not resolved)
    assert "beats STM-with-all-items" not in " ".join(" ".join(t.split()) for t in _texts("03"))


def test_02_prints_the_n_max_its_prose_defines():
    nb = nbformat.read(str(ROOT / "notebooks" / "02_stm_recall.ipynb"), as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "half_recall_n(curves)" in c.source)
    out = "".join(o.get("text", "") for o in cell.outputs)
    assert f"N_max ≈ {NS['n_max']:.1f} items" in out
    assert f"N_max ≈ {NS['n_max']:.1f} items" in _md(ROOT / "notebooks" / "02_stm_recall.ipynb")


def test_00_says_whether_each_shown_answer_was_right():
    cells = to_notebook(next(s for s in SRCS if s.stem.startswith("00")), NS).cells
    ltm = next(i for i, c in enumerate(cells) if 'answers["from LTM"] = ' in c.source)
    check = cells[ltm + 1]
    assert check.cell_type == "code" and "answer_found" in check.source and "display(Markdown(" in check.source


# ---- (e) no hand-typed measured numbers in notebook prose ---------------------------------------------------

LINTED = [s for s in SRCS if s.stem[:2] not in HAND_TYPED_HEADERS]
# Numbers that may stay literal, each with its reason (matched on the exact text).
ALLOWED = {
    "0.5·RMS": "04 exercise: a quantisation step for the reader to try",
    "0.5 nats/token": "09 exercise: a threshold for the reader to try",
    "| 0.1 |": "06: the default η of ControllerConfig, a knob (not in any data file)",
    "1–10 s": "06: λ, a user's price of an error, not a measurement",
    "λ = 5 s per wrong answer": "08: the λ chosen for the simulated world, a knob",
    "λ to 20 s": "08 exercise: a λ for the reader to try",
    "95 %": "Wilson 95 % intervals: a confidence level",
    "50 %": "06: τ = 1 gives τ²/(1+τ²) = 50 % of the ideal step, a formula",
    "±0.10": "09: issue #15's bar for the recall probe, a threshold (not a measurement)",
}
NUMBER = re.compile(r"[+−-]?\d+(?:[.,]\d+)*(?:\.\d+)?\s?(?:%|ms|s|min|minutes?|seconds?|MiB|KiB|Mbit|bits?)(?![\w])"
                    r"|(?<![\w.])\d+\.\d+")


def _sections() -> set[str]:
    return {m for s in SRCS for m in re.findall(r"^# #+ (\d\d\.\d+)", s.read_text(), re.M)}


# An exercise's run-time note, "(≈ 2 min)" or "(≈ 45 min: trains a cartridge)": an estimate for the reader, not a
# measurement (the pattern and its check are tests/test_course.py's RUN_TIME).
RUN_TIME_NOTE = r"\(≈ \d+(?:–\d+)? (?:min|h)(?:: [^()]*)?\)"


def hand_typed_numbers(text: str, sections: set[str]) -> list[str]:
    """Measured-looking numbers in markdown outside placeholders, code spans, links, run-time notes of exercises and
    the allowlist."""
    for pattern in (r"\{\{.*?\}\}", r"`[^`]*`", r"<[^>]*>", r"\]\([^)]*\)", RUN_TIME_NOTE):
        text = re.sub(pattern, " ", text, flags=re.S)
    for allowed in ALLOWED:
        text = text.replace(allowed, " ")
    return [m for m in NUMBER.findall(text) if m.strip() not in sections and not re.fullmatch(r"\d+", m.strip())]


def test_the_lint_catches_measured_numbers():
    found = hand_typed_numbers("recall 0.72, regret 12.3 %, training took 478 s; see 03.4 and `lr=0.02`", {"03.4"})
    assert [f.strip() for f in found] == ["0.72", "12.3 %", "478 s"]
    found = hand_typed_numbers("1. (≈ 45 min: trains a cartridge) Train it. It took 12 min.", set())
    assert [f.strip() for f in found] == ["12 min"]  # the run-time note is an estimate; a stated duration is not


def test_every_allowed_number_is_still_used():
    md = "\n".join(template_of(c) or c.source for s in LINTED for c in to_notebook(s, NS).cells
                   if c.cell_type == "markdown")
    assert [a for a in ALLOWED if a not in md] == []


@pytest.mark.parametrize("src", LINTED, ids=lambda p: p.stem)
def test_notebook_prose_has_no_hand_typed_measurements(src):
    md = "\n".join(template_of(c) or c.source for c in to_notebook(src, NS).cells if c.cell_type == "markdown")
    assert hand_typed_numbers(md, _sections()) == [], "render it from the data: {{ curves... }} (tools.prose)"


# ---- the machinery ------------------------------------------------------------------------------------------

def test_prose_and_the_notebook_sync_import_no_torch():
    code = ("import sys, tools.prose, tools.readme, tools.notebooks, stmltm_nb.apps.cli; "
            "tools.prose.namespace(); bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_build_command_keeps_the_options_of_the_old_subcommand():
    """`python -m tools.notebooks` (make notebooks / make readme) took over `stmltm notebooks`, options and all."""
    opts = {a.dest for a in build_parser()._actions} - {"help"}
    assert opts == {"out", "only", "fast", "no_execute", "sources_only", "new_cells", "readme"}
    args = build_parser().parse_args(["--only", "00,05", "--fast", "--sources-only", "--new-cells"])
    assert (args.only, args.fast, args.sources_only, args.new_cells, args.readme) == ("00,05", True, True, True, False)


def test_record_runtimes_merges_per_notebook(tmp_path):
    path = tmp_path / "runtimes.json"
    record_runtimes({"00_a": 12.34}, "seed", path)
    record_runtimes({"01_b": 5.0}, "build", path)
    data = json.loads(path.read_text())
    assert data["seconds"] == {"00_a": 12.3, "01_b": 5.0} and data["source"] == {"00_a": "seed", "01_b": "build"}


def test_sync_inserts_new_cells_only_when_asked_and_keeps_outputs(tmp_path):
    src = tmp_path / "00_x.py"
    src.write_text("# %% [markdown]\n# n = {{ curves.n_facts }}\n\n# %%\nprint(1)\n")
    nb = to_notebook(src, NS)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nbformat.write(nb, str(src.with_suffix(".ipynb")))
    assert nb.cells[0].source == f"n = {NS['curves']['n_facts']}"
    src.write_text("# %% [markdown]\n# n = {{ curves.n_facts }} facts\n\n# %%\nprint(1)\n\n# %%\nprint(2)\n")
    with pytest.raises(ValueError, match="added or removed"):
        sync_sources([src])
    assert sync_sources([src], new_cells=True) == ["00_x.ipynb (1 new code cell(s) not executed yet)"]
    got = nbformat.read(str(src.with_suffix(".ipynb")), as_version=4)
    assert [c.source for c in got.cells] == [f"n = {NS['curves']['n_facts']} facts", "print(1)", "print(2)"]
    assert got.cells[1].outputs[0].text == "1\n" and got.cells[2].outputs == []
    assert template_of(got.cells[0]) == "n = {{ curves.n_facts }} facts"


def test_merge_keeps_edited_cells_outputs():
    old = [nbformat.v4.new_code_cell("a = 1\nprint(a)", outputs=[nbformat.v4.new_output("stream", text="1")]),
           nbformat.v4.new_markdown_cell("text")]
    want = [nbformat.v4.new_code_cell("a = 1\nprint(a)  # same"), nbformat.v4.new_code_cell("other()"),
            nbformat.v4.new_markdown_cell("text")]
    cells, fresh = _merge_cells(want, old)
    assert fresh == 1 and cells[0].outputs and cells[0].source.endswith("# same") and cells[1].outputs == []
