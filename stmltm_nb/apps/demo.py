"""The main job behind ``stmltm demo``: STM on shipped facts → measured curves → the switching rule → one
consolidation → STM vs LTM, written as ``report.json`` (all numbers) and ``report.html`` (plotly figures,
self-contained: plotly.js is inlined so the page opens offline)."""

from __future__ import annotations

import html
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stmltm_nb.apps.measure_job import _clean, _log
from stmltm_nb.io import atomic_write_json, atomic_write_text


def run_demo(model_name: str = "default", out_dir: str | Path = "report", n_facts: int = 32, steps: int = 100,
             fast: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run the whole pipeline at demo size and write the report. Returns the JSON-ready dict."""
    from stmltm_nb.decision.curves import ltm_recall, recall_model_from
    from stmltm_nb.decision.switching import CostModel, SwitchInputs, decide
    from stmltm_nb.memory.config import ConsolidationConfig
    from stmltm_nb.memory.consolidation import consolidate, templates_of
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.metrics import measure as M
    from stmltm_nb.metrics.recall import compare_memories
    from stmltm_nb.metrics.stats import fit_all_recall, fit_cost
    from stmltm_nb.models import load_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    lm = load_model(model_name)
    model, tok = lm.model, lm.tokenizer
    facts = load_facts()
    if fast:
        n_facts, steps = min(n_facts, 8), min(steps, 5)
    train = facts[:n_facts]
    res: dict[str, Any] = {"model": lm.name, "n_facts": n_facts, "fast": fast}

    _log("STM recall curve")
    sizes = [1, 4, 16] if fast else [1, 4, 16, 32, 64]
    rows = M.recall_curve(model, tok, facts, sizes, per_position=1 if fast else 3)
    pooled = M.pooled_recall(rows)
    fits = fit_all_recall([r["n"] for r in pooled], [r["recall"] for r in pooled])
    res["recall"] = {"by_position": rows, "pooled": pooled, "fits": [asdict(f) for f in fits], "best_fit": fits[0].model}

    _log("STM cost curve")
    crow = M.cost_curve(model, tok, facts, [1, 8] if fast else [1, 16, 64], repeats=2)
    ns = [r["n"] for r in crow[1:]]
    exc = [r["ttft_cached_s"] - crow[0]["ttft_cached_s"] for r in crow[1:]]
    res["cost"] = {"rows": crow, "fit_cached_linear": asdict(fit_cost(ns, exc))}

    _log(f"consolidation: cartridge on {n_facts} facts")
    cfg = ConsolidationConfig(p=64 if not fast else 16, steps=steps, batch_size=16 if not fast else 4)
    run = consolidate(model, tok, [f.to_item() for f in train], templates_of(train), cfg, progress=progress)
    over = M.cartridge_overhead(run.cartridge, repeats=3)
    res["consolidation"] = {"config": asdict(cfg), "seconds": run.seconds, "losses": run.train.losses}
    res["cartridge"] = over

    _log("STM vs LTM")
    table = compare_memories(model, tok, train, run.cartridge, residual=facts[n_facts : n_facts + 4],
                             chunk_size=cfg.chunk_size)
    res["comparison"] = table.to_dict(orient="records")
    q_cart = ltm_recall(res)

    _log("the switching rule")
    rec = recall_model_from(res)
    x = SwitchInputs(n=n_facts, Q=1000, c_upd=run.seconds["total"], r_cart=over["r_cart_s"],
                     cost=CostModel(0.0, max(0.0, res["cost"]["fit_cached_linear"]["coef"]["b"])), recall=rec,
                     q_cart=q_cart, lam=5.0, eta=0.1)
    dec = decide(x)
    res["decision"] = {"inputs": {k: v for k, v in asdict(x).items()}, **dec.to_json()}
    res["total_seconds"] = time.perf_counter() - t0
    atomic_write_json(out / "report.json", _clean(res))
    write_html(res, out / "report.html")
    _log(f"wrote {out / 'report.json'} and {out / 'report.html'} in {res['total_seconds']:.0f} s")
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
