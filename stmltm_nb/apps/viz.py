"""Plotly figure helpers (no torch): one per estimator, all reading the measured-curves dict.

Every axis has a label with units. Figures are plain ``go.Figure`` objects (portable: Jupyter, Colab, Voilà,
the HTML report).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from stmltm_nb.metrics.stats import RECALL_MODELS, CostFit, Fit


def setup_plotly() -> None:
    """Render figures as Plotly JSON (JupyterLab) plus a small HTML stub (classic notebook, Colab)."""
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype+notebook_connected"
    pio.templates.default = "plotly_white"


def fig_recall(curves: dict[str, Any], show_fits: Sequence[str] | None = None) -> go.Figure:
    """q_ctx(n) by position with Wilson 95 % intervals, the pooled curve and the fitted families."""
    rec = curves["recall"]
    fig = go.Figure()
    for pos in ("start", "middle", "end"):
        rows = [r for r in rec["by_position"] if r["position"] == pos]
        if not rows:
            continue
        fig.add_trace(go.Scatter(x=[r["n"] for r in rows], y=[r["recall"] for r in rows], mode="markers+lines",
                                 name=f"item at {pos}", opacity=0.6,
                                 error_y={"type": "data", "symmetric": False,
                                          "array": [r["hi"] - r["recall"] for r in rows],
                                          "arrayminus": [r["recall"] - r["lo"] for r in rows]}))
    pooled = rec["pooled"]
    fig.add_trace(go.Scatter(x=[r["n"] for r in pooled], y=[r["recall"] for r in pooled], mode="markers",
                             marker={"size": 11, "color": "black"}, name="pooled"))
    ns = np.geomspace(1, max(r["n"] for r in pooled), 100)
    for f in rec["fits"]:
        if show_fits is not None and f["model"] not in show_fits:
            continue
        fit = Fit(f["model"], f["params"], f["residuals"], f["rmse"], f["aic"])
        fig.add_trace(go.Scatter(x=ns, y=fit.predict(ns), mode="lines", line={"dash": "dot"},
                                 name=(f"{f['model']} fit (AICc {f['aicc']:.1f}, weight {f['weight']:.2f})"
                                       if f.get("aicc") is not None and f.get("weight") is not None
                                       else f"{f['model']} fit (AIC {f['aic']:.1f})")))
    fig.update_layout(title="STM recall q_ctx(n) (greedy answer contains the gold value)",
                      xaxis={"title": "STM items n", "type": "log"}, yaxis={"title": "recall", "range": [-0.02, 1.05]},
                      height=420)
    return fig


def fig_loss(curves: dict[str, Any]) -> go.Figure:
    """L_ctx(n): mean answer NLL (nats/token) against n."""
    pooled = curves["recall"]["pooled"]
    fig = go.Figure(go.Scatter(x=[r["n"] for r in pooled], y=[r["nll"] for r in pooled], mode="markers+lines",
                               name="L_ctx(n)"))
    fig.update_layout(title="STM answer loss L_ctx(n)", xaxis={"title": "STM items n", "type": "log"},
                      yaxis={"title": "answer NLL [nats/token]"}, height=380)
    return fig


def fig_cost(curves: dict[str, Any]) -> go.Figure:
    """c_ctx(n) in both regimes (measured time to first token) with the linear/quadratic fits."""
    cost = curves["cost"]
    rows = cost["rows"]
    base = rows[0]
    ns = np.array([r["n"] for r in rows[1:]], float)
    fig = go.Figure()
    for key, label, fitkey in (("ttft_cached_s", "cached STM (prefill once)", "fit_cached_linear"),
                               ("ttft_stateless_s", "stateless (prefill every query)", "fit_stateless_quadratic")):
        y = np.array([r[key] - base[key] for r in rows[1:]])
        fig.add_trace(go.Scatter(x=ns, y=y, mode="markers", name=label))
        f = cost[fitkey]
        cf = CostFit(f["coef"], f["residuals"], f["rmse"], f["aic"])
        grid = np.linspace(0, ns.max(), 100)
        terms = " + ".join(f"{v:.3g}·n^{i}" for i, v in enumerate(f["coef"].values()))
        fig.add_trace(go.Scatter(x=grid, y=cf.predict(grid), mode="lines", line={"dash": "dot"},
                                 name=f"fit: {terms}"))
    fig.update_layout(title="Per-query cost attributable to STM: c_ctx(n) = TTFT(n) − TTFT(0)",
                      xaxis={"title": "STM items n"}, yaxis={"title": "seconds per query"}, height=420)
    return fig


def fig_training(curves: dict[str, Any]) -> go.Figure:
    """Distillation loss per step with the probe's extrapolation."""
    cons = curves["consolidation"]
    losses = cons["losses"]
    probe = cons["probe"]
    fig = go.Figure(go.Scatter(y=losses, x=list(range(1, len(losses) + 1)), mode="lines", name="loss per step"))
    fig.add_vline(x=probe["probe_steps"], line_dash="dash", annotation_text="probe stops here")
    fig.add_hline(y=probe["predicted"], line_dash="dot", annotation_text=f"probe prediction {probe['predicted']:.3f}")
    fig.update_layout(title="Cartridge training: context-distillation loss",
                      xaxis={"title": "step"}, yaxis={"title": "weighted soft CE [nats/token]"}, height=380)
    return fig


def fig_comparison(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """STM-vs-LTM table as grouped bars with the rows' 95 % intervals (relations, then facts, resampled)."""
    fig = go.Figure()
    for kind in ("train", "heldout"):
        rs = [r for r in rows if r["questions"] == kind]
        fig.add_trace(go.Bar(x=[r["mode"] for r in rs], y=[r["recall"] for r in rs],
                             name="trained templates" if kind == "train" else "held-out wordings",
                             error_y={"type": "data", "symmetric": False,
                                      "array": [r["hi"] - r["recall"] for r in rs],
                                      "arrayminus": [r["recall"] - r["lo"] for r in rs]}))
    fig.update_layout(barmode="group", title="Recall by memory mode", yaxis={"title": "recall", "range": [0, 1.05]},
                      xaxis={"title": "memory"}, height=420)
    return fig


def fig_policies(table: Sequence[dict[str, Any]]) -> go.Figure:
    """Total cost per policy and scenario (seconds)."""
    fig = go.Figure()
    for pol in dict.fromkeys(r["policy_kind"] for r in table):
        rs = [r for r in table if r["policy_kind"] == pol]
        fig.add_trace(go.Bar(x=[r["scenario"] for r in rs], y=[r["total"] for r in rs], name=pol))
    fig.update_layout(barmode="group", title="Total cost per policy (compute + priced errors + updates)",
                      yaxis={"title": "seconds"}, xaxis={"title": "stream scenario"}, height=420)
    return fig


def fig_timeline(events: Sequence[dict[str, Any]]) -> go.Figure:
    """Controller event log as a timeline: residual STM size at each decision, consolidations marked."""
    dec = [e for e in events if e["event"] == "decision"]
    fig = go.Figure(go.Scatter(x=list(range(1, len(dec) + 1)), y=[e["n"] for e in dec], mode="lines+markers",
                               name="residual STM items n",
                               text=[e["explanation"] for e in dec], hoverinfo="text+y"))
    commits = [i + 1 for i, e in enumerate(dec) if e["consolidate"]]
    for c in commits:
        fig.add_vline(x=c, line_color="green", line_dash="dot")
    fig.update_layout(title="Controller timeline (green: consolidation triggered)", xaxis={"title": "decision #"},
                      yaxis={"title": "STM items"}, height=380)
    return fig


def recall_fit(curves: dict[str, Any], model: str | None = None) -> Fit:
    f = next(x for x in curves["recall"]["fits"] if x["model"] == (model or curves["recall"]["best_fit"]))
    return Fit(f["model"], f["params"], f["residuals"], f["rmse"], f["aic"])


__all__ = ["setup_plotly", "fig_recall", "fig_loss", "fig_cost", "fig_training", "fig_comparison", "fig_policies",
           "fig_timeline", "recall_fit", "RECALL_MODELS"]
