"""The main job behind ``stmltm demo``: STM on shipped facts → measured curves → the switching rule → one
consolidation → STM vs LTM, written as ``report.json`` (all numbers) and ``report.html`` (plotly figures,
self-contained: plotly.js is inlined so the page opens offline)."""

from __future__ import annotations

import html
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stmltm_nb.apps.log import json_clean, log
from stmltm_nb.io import atomic_write_json, atomic_write_text

DEMO_FACTS, DEMO_STEPS = 16, 80  # sized for a first run: about 4 minutes on 2 cores (README: measured)


def run_demo(model_name: str = "default", out_dir: str | Path = "report", n_facts: int = DEMO_FACTS,
             steps: int = DEMO_STEPS, fast: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run the whole pipeline at demo size and write the report. Returns the JSON-ready dict. Every phase
    longer than a couple of seconds shows a progress bar (``progress``) after a timestamped line."""
    from stmltm_nb.apps import sections as S
    from stmltm_nb.decision.curves import priors
    from stmltm_nb.decision.switching import SwitchInputs, decide
    from stmltm_nb.memory.config import ConsolidationConfig
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.metrics.measure import cartridge_overhead
    from stmltm_nb.models import load_model

    if fast:
        n_facts, steps = min(n_facts, 8), min(steps, 5)
    # the recipe is checked before the model loads: a bad value never costs the recall and cost sections
    cfg = ConsolidationConfig(p=64 if not fast else 16, steps=steps, batch_size=8 if not fast else 4)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    lm = load_model(model_name)
    model, tok = lm.model, lm.tokenizer
    facts = load_facts()
    train = facts[:n_facts]
    res: dict[str, Any] = {"model": lm.name, "n_facts": n_facts, "fast": fast}

    log("STM recall curve")
    sizes = [1, 4, 16] if fast else [1, 4, 16, 32, 64]
    res["recall"] = S.recall_section(model, tok, facts, sizes, per_position=1 if fast else 2, progress=progress)

    log("STM cost curve")
    res["cost"] = S.cost_section(model, tok, facts, [1, 8] if fast else [1, 16, 64], repeats=2, progress=progress)

    log(f"consolidation: cartridge on {n_facts} facts")
    res["consolidation"], run = S.consolidation_section(model, tok, train, cfg, progress)
    res["cartridge"] = cartridge_overhead(run.cartridge, repeats=3)

    log("STM vs LTM")
    # demo size: half of the consolidated facts (at least 8) + 4 residual ones, recall only (no answer NLL)
    asked = train[: max(8, n_facts // 2)]
    res["comparison"] = S.comparison_section(model, tok, asked, run.cartridge, facts[n_facts : n_facts + 4],
                                             cfg.chunk_size, progress=progress)

    log("the switching rule")
    pri = priors(res).require("cost", "recall", "q_cart", "c_upd", "r_cart")
    x = SwitchInputs(n=n_facts, Q=1000, c_upd=pri.c_upd, r_cart=pri.r_cart, cost=pri.cost, recall=pri.recall,
                     q_cart=pri.q_cart, lam=5.0, eta=0.1)
    dec = decide(x)
    res["decision"] = {"inputs": {k: v for k, v in asdict(x).items()}, **dec.to_json()}
    res["total_seconds"] = time.perf_counter() - t0
    atomic_write_json(out / "report.json", json_clean(res))
    write_html(res, out / "report.html")
    log(f"wrote {out / 'report.json'} and {out / 'report.html'} in {res['total_seconds']:.0f} s")
    return res


def write_html(res: dict[str, Any], path: str | Path) -> Path:
    """A self-contained HTML report: decision with every term, figures, and the STM-vs-LTM table."""
    import plotly.io as pio

    from stmltm_nb.apps.viz import fig_comparison, fig_recall

    figs = [fig_recall(res), fig_comparison(res["comparison"])]
    parts = [pio.to_html(f, include_plotlyjs=(i == 0), full_html=False) for i, f in enumerate(figs)]
    d = res["decision"]
    terms = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td></tr>" for k, v in d["terms"].items()
                    if isinstance(v, (int, float)))
    gates = "".join(f"<tr><td>{html.escape(g['name'])}</td><td>{'pass' if g['passed'] else 'BLOCK'}</td>"
                    f"<td>{html.escape(g['rule'])}</td><td>{html.escape(str(g['value']))}</td></tr>" for g in d["gates"])
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(round(v, 3) if isinstance(v, float) else v))}</td>"
                                    for v in r.values()) + "</tr>" for r in res["comparison"])
    head = "".join(f"<th>{html.escape(k)}</th>" for k in res["comparison"][0])
    verdict = "CONSOLIDATE" if d["consolidate"] else "WAIT"
    cons = res["consolidation"]["seconds"]
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>stmltm report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>stmltm report — {html.escape(res['model'])}</h1>
<p>{res['n_facts']} facts consolidated into a cartridge of p={res['cartridge']['p']} tokens in
{cons['total']:.0f} s (teacher {cons['teacher']:.0f} s, training {cons['train']:.0f} s). Whole run {res['total_seconds']:.0f} s.</p>
<h2>Decision: {verdict}</h2><p>{html.escape(d['explanation'])}</p>
<table><tr><th>term</th><th>value</th></tr>{terms}</table>
<h3>Gates</h3><table><tr><th>gate</th><th>state</th><th>rule</th><th>value</th></tr>{gates}</table>
<h2>STM recall</h2>{parts[0]}<h2>STM vs LTM</h2>{parts[1]}
<table><tr>{head}</tr>{rows}</table></body></html>"""
    return atomic_write_text(path, body)


__all__ = ["run_demo", "write_html"]
