"""The main job behind ``stmltm demo``: STM on shipped facts → measured curves → the switching rule → one
consolidation → STM vs LTM, written as ``report.json`` (all numbers) and ``report.html`` (plotly figures,
self-contained: plotly.js is inlined so the page opens offline)."""

from __future__ import annotations

import html
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stmltm_nb.apps.log import json_clean, log
from stmltm_nb.decision.curves_record import SCHEMA_VERSION
from stmltm_nb.decision.defaults import DEFAULTS
from stmltm_nb.decision.switching import verdict
from stmltm_nb.io import atomic_write_json, atomic_write_text
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.metrics import comparison as C


@dataclass(frozen=True)
class DemoSize:
    """How big a demo run is: facts consolidated, training steps, distinct questions per STM size of the recall
    curve (at least), the memory modes of the STM-vs-LTM table (``None``: all of
    :data:`~stmltm_nb.metrics.comparison.MODES`) and how many of the table's questions are answered at once (1: one
    by one, each timed; more: the same greedy answers, their seconds per query left out of the table) and the STM sizes
    of the recall curve."""

    facts: int
    steps: int
    min_questions: int
    modes: tuple[str, ...] | None
    table_batch: int
    recall_sizes: tuple[int, ...]  # STM sizes (items) of the recall curve


# The first run, sized for a class on 2 cores (README: measured on a fresh clone): the table keeps the rows the
# verdict and its figure read and answers them in batches (the latencies the rule reads come from the cost curves);
# `stmltm demo --full` is the big version: every mode, each query timed.
DEMO = DemoSize(facts=16, steps=60, min_questions=12, modes=(C.NO_MEMORY, C.STM_ALL, C.RETRIEVAL, C.LTM, C.SERVED),
                table_batch=8, recall_sizes=(1, 4, 16, 64))
DEMO_FULL = DemoSize(facts=64, steps=400, min_questions=24, modes=None, table_batch=1, recall_sizes=(1, 4, 16, 32, 64))
DEMO_ASK_BATCH = 8  # STM recall-curve questions answered at once (same answers: python benchmarks/ask_batch.py --curve)


def demo_recipe(steps: int, fast: bool = False) -> ConsolidationConfig:
    """The demo's consolidation recipe: the shipped one with a 64-token prefix (16 in fast mode), ``steps`` steps of 8
    rows (4 fast), in 3 length-grouped micro-batches (the same gradient as 2, less padding: benchmarks/roofline.py)."""
    return ConsolidationConfig(p=16 if fast else 64, steps=steps, batch_size=4 if fast else 8, micro_batches=3)


def run_demo(model_name: str = "default", out_dir: str | Path = "report", n_facts: int | None = None,
             steps: int | None = None, fast: bool = False, progress: bool = True, full: bool = False) -> dict[str, Any]:
    """Run the whole pipeline at demo size (:data:`DEMO`; ``full``: :data:`DEMO_FULL`, every memory mode and 24
    questions per STM size) and write the report. ``n_facts``/``steps`` override the size's. Returns the JSON-ready
    dict. Every phase longer than a couple of seconds shows a progress bar (``progress``) after a timestamped line."""
    from stmltm_nb.apps import sections as S
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.metrics.measure import cartridge_overhead
    from stmltm_nb.models import load_model

    size = DEMO_FULL if full else DEMO
    n_facts = size.facts if n_facts is None else n_facts
    steps = size.steps if steps is None else steps
    if fast:
        n_facts, steps = min(n_facts, 8), min(steps, 5)
    # the recipe is checked before the model loads: a bad value never costs the recall and cost sections
    cfg = demo_recipe(steps, fast)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    facts = load_facts()  # the question bank is checked before the model loads
    lm = load_model(model_name)
    train = facts[:n_facts]
    res: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "model": lm.name, "n_facts": n_facts, "fast": fast,
                           "full": full}

    log("STM recall curve")
    sizes = [1, 4, 16] if fast else list(size.recall_sizes)
    # questions about one buffer answered 8 at a time: the same answers as one by one (checked on the real model at
    # sizes 1-64 with 24 questions each, benchmarks/results/ask_batch_curve.json); no timing is read from this curve
    res["recall"] = S.recall_section(lm, facts, sizes, per_position=1 if fast else 2, progress=progress,
                                     min_questions=size.min_questions, batch_size=DEMO_ASK_BATCH)

    log("STM cost curve")
    cost_sizes = [1, 8] if fast else [1, 16, 64]
    res["cost"] = S.cost_section(lm, facts, cost_sizes, repeats=2, progress=progress)
    log("STM + retrieval cost curve")
    res["retrieval"] = S.retrieval_section(lm, facts, cost_sizes, repeats=2, progress=progress)

    log(f"consolidation: cartridge on {n_facts} facts")
    res["consolidation"], run = S.consolidation_section(lm, train, cfg, progress)
    res["cartridge"] = cartridge_overhead(run.cartridge, repeats=3)

    log("STM vs LTM")
    # demo size: half of the consolidated facts (at least 8) + 4 residual ones, recall only (no answer NLL)
    asked = train[: max(8, n_facts // 2)]
    res["comparison"] = S.comparison_section(lm, asked, run.cartridge, facts[n_facts : n_facts + 4],
                                             cfg.chunk_size, progress=progress, modes=size.modes,
                                             batch_size=size.table_batch)

    log("the switching rule, on this run's cartridge")
    res["decision"] = demo_decision(res)
    res["total_seconds"] = time.perf_counter() - t0
    atomic_write_json(out / "report.json", json_clean(res))
    write_html(res, out / "report.html")
    log(f"wrote {out / 'report.json'} and {out / 'report.html'} in {res['total_seconds']:.0f} s")
    return res


def demo_decision(res: dict[str, Any], Q: float = DEFAULTS.Q, lam: float = DEFAULTS.lam,
                  eta: float = DEFAULTS.eta, gamma: float = DEFAULTS.gamma) -> dict[str, Any]:
    """The switching decision on what this run measured (torch-free: ``res`` is the demo's results dict, schema 2,
    read through :func:`~stmltm_nb.decision.curves_record.read_curves`). Q, λ, η and γ default to
    :data:`~stmltm_nb.decision.defaults.DEFAULTS`, as for ``stmltm decide``, the controller and the tuner.

    - q_cart: the served memory (this run's cartridge + residual STM) on held-out wordings of the consolidated
      facts, with its interval; c_upd and r_cart: this run's consolidation and cartridge; q_ctx(n) and c_ctx(n):
      this run's STM curves, n = m = the facts consolidated.
    - Gates: G1 with m = the facts consolidated; G5 (hold-out) = the served held-out recall on the cartridge facts
      beats the bar q_ctx(n) + γ; G2 (SNR), G6 (retention) when this run measured them; the others "not measured".
    - Retrieval arm: this run's ``retrieval`` cost curve, else the "STM + retrieval" row's s/query excess over
      "no memory" (a constant c_ret at this n), with the row's held-out recall on the cartridge facts.
    """
    from stmltm_nb.decision.curves import measured_inputs
    from stmltm_nb.decision.switching import decide

    n = float(res["n_facts"])
    x = measured_inputs(res, n, Q, lam, eta, gamma, source="this demo run")
    q_stm = x.recall(n)
    dec = decide(x)
    source = (f"this run's cartridge: served memory (cartridge + residual STM) held-out recall on the {n:g} "
              f"consolidated facts {x.q_cart:.2f} [{x.q_cart_lo:.2f}, {x.q_cart_hi:.2f}], c_upd {x.c_upd:.0f} s "
              f"measured here; STM q_ctx({n:g}) = {q_stm:.2f} from this run's recall curve")
    return {"source": source, "inputs": asdict(x), **dec.to_json()}


def _gate_state(g: dict[str, Any]) -> str:
    """A gate's printed state; a gate without a value is "not measured", never "pass"."""
    if "state" in g:
        return str(g["state"])
    if not g.get("measured", g.get("value") is not None):
        return "not measured"
    return "pass" if g["passed"] else ("BLOCK" if g.get("enforced", True) else "fail (logged, not enforced)")


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return html.escape(f"{v:.3g}")
    if isinstance(v, list):
        return html.escape(", ".join(f"{e:.3g}" if isinstance(e, float) else str(e) for e in v))
    return html.escape("—" if v is None else str(v))


def write_html(res: dict[str, Any], path: str | Path) -> Path:
    """A self-contained HTML report: decision with every term, figures, and the STM-vs-LTM table."""
    import plotly.io as pio

    from stmltm_nb.apps.viz import fig_comparison, fig_recall

    figs = [fig_recall(res), fig_comparison(res["comparison"])]
    parts = [pio.to_html(f, include_plotlyjs=(i == 0), full_html=False) for i, f in enumerate(figs)]
    d = res["decision"]
    terms = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td></tr>" for k, v in d["terms"].items()
                    if isinstance(v, (int, float)))
    gates = "".join(f"<tr><td>{html.escape(g['name'])}</td><td>{html.escape(_gate_state(g))}</td>"
                    f"<td>{html.escape(g['rule'])}</td><td>{_cell(g['value'])}</td><td>{_cell(g['threshold'])}</td>"
                    "</tr>" for g in d["gates"])
    not_eval = [g["name"] for g in d["gates"] if _gate_state(g) == "not measured"]
    not_eval_p = (f"<p>Not evaluated (not measured in this run): {html.escape(', '.join(not_eval))}.</p>"
                  if not_eval else "<p>Every gate was evaluated.</p>")
    arms = "".join(f"<tr><td>{html.escape(k)}</td><td>{_cell(a['cost_s'])}</td><td>{_cell(a['q'])} "
                   f"[{_cell(a['lo'])}, {_cell(a['hi'])}]</td><td>{'yes' if a['equal_quality'] else 'no'}</td>"
                   f"<td>{_cell(a['priced_s']) if a['available'] else 'unavailable: ' + html.escape(a['why_unavailable'])}"
                   "</td></tr>" for k, a in d.get("arms", {}).items())
    rows = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r.values()) + "</tr>" for r in res["comparison"])
    head = "".join(f"<th>{html.escape(k)}</th>" for k in res["comparison"][0])
    batched_p = ("<p>s_per_query is empty (—) where the table's questions were answered in batches (the same greedy "
                 "answers; a batch's seconds are not one query's latency): the rule reads the per-query costs from the "
                 "STM and retrieval cost curves. <code>stmltm demo --full</code> times every query.</p>"
                 if any(r.get("s_per_query") is None for r in res["comparison"]) else "")
    shown = verdict(d["consolidate"], d.get("arm", "stm"))
    cons = res["consolidation"]["seconds"]
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>stmltm report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>stmltm report — {html.escape(res['model'])}</h1>
<p>{res['n_facts']} facts consolidated into a cartridge of p={res['cartridge']['p']} tokens in
{cons['total']:.0f} s (teacher {cons['teacher']:.0f} s, training {cons['train']:.0f} s). Whole run {res['total_seconds']:.0f} s.</p>
<h2>Decision: {shown}</h2><p>Decided on {html.escape(d.get('source', 'the measured curves'))}.</p>
<p>{html.escape(d['explanation'])}</p>
<h3>Arms (held-out recall on the consolidated facts; cost per query, the update amortised over Q)</h3>
<table><tr><th>arm</th><th>cost [s/query]</th><th>recall [95 % interval]</th><th>equal quality</th>
<th>priced [s/query]</th></tr>{arms}</table>
<table><tr><th>term</th><th>value</th></tr>{terms}</table>
<h3>Gates</h3><table><tr><th>gate</th><th>state</th><th>rule</th><th>value</th><th>threshold</th></tr>{gates}</table>
{not_eval_p}
<h2>STM recall</h2>{parts[0]}<h2>STM vs LTM</h2>{parts[1]}
{batched_p}<table><tr>{head}</tr>{rows}</table></body></html>"""
    return atomic_write_text(path, body)


__all__ = ["DEMO", "DEMO_FULL", "DemoSize", "demo_decision", "demo_recipe", "run_demo", "write_html"]
