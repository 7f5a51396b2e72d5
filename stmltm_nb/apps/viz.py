"""Plotly figure helpers (no torch): one per estimator, all reading the measured-curves dict.

Every axis has a label with units. Figures are plain ``go.Figure`` objects (portable: Jupyter, Colab, Voilà,
the HTML report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from stmltm_nb.metrics.stats import RECALL_MODELS, CostFit, Fit

STATIC_RENDERER = "stmltm_png"  # the renderer name that adds the static image (registered by setup_plotly)
STATIC_SIZE = (900, 500)  # px, the static image's width and height when the figure sets none


def setup_plotly(static: bool | None = None) -> None:
    """Render figures as Plotly JSON (JupyterLab) plus a small HTML stub (classic notebook, Colab). With ``static``
    (default: :func:`~stmltm_nb.env.static_figures`, which the notebook build turns on) every ``fig.show()`` also
    writes a PNG output of its own beside the interactive one, so the repository page and nbviewer show the figure
    without a kernel or JavaScript (needs ``kaleido`` and a Chromium; an error says so)."""
    import plotly.io as pio
    from plotly.io.base_renderers import ExternalRenderer

    from stmltm_nb.env import static_figures

    class StaticPNG(ExternalRenderer):
        """The figure as an ``image/png`` output of its own (called by ``fig.show()`` after the interactive one)."""

        def render(self, fig_dict: dict) -> None:
            from IPython.display import Image, display

            layout = fig_dict.get("layout", {})
            try:
                png = pio.to_image(fig_dict, format="png", width=layout.get("width") or STATIC_SIZE[0],
                                   height=layout.get("height") or STATIC_SIZE[1])
            except Exception as e:  # noqa: BLE001 - kaleido reports a missing Chromium in several ways
                raise RuntimeError(f"the static image of a figure needs kaleido and a Chromium ({e}): `make notebooks` "
                                   "installs kaleido for the build; or unset STMLTM_STATIC_FIGURES") from e
            display(Image(png))

    pio.renderers[STATIC_RENDERER] = StaticPNG()
    live = "plotly_mimetype+notebook_connected"
    pio.renderers.default = f"{live}+{STATIC_RENDERER}" if (static_figures() if static is None else static) else live
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


def fig_recipe_bars(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """The recipe runs against the LTM bars: one panel per bar (:data:`~stmltm_nb.metrics.ltm_bars.RECIPE_BARS`),
    one dot per run (rows of :func:`~stmltm_nb.metrics.ltm_bars.recipe_rows`), the bar as a dashed line; filled dots
    meet the bar (:func:`~stmltm_nb.metrics.ltm_bars.bar_met`; the residual facts' bar is also 90 % of their
    STM-only recall). Recall panels are shares of questions, ΔNLL panels nats/token over no memory."""
    from plotly.subplots import make_subplots

    from stmltm_nb.metrics.ltm_bars import RECIPE_BARS, bar_met

    titles = {"LTM trained": "cartridge alone,<br>trained", "LTM held-out": "cartridge alone,<br>held-out",
              "LTM+res: cart facts": "served: its<br>own facts", "LTM+res: resid facts": "served: the<br>notes' facts",
              "ΔNLL LTM": "ΔNLL,<br>cartridge", "ΔNLL LTM+res": "ΔNLL,<br>served"}
    names = [f'{r["run"]} ({r["split"]})' for r in rows]
    fig = make_subplots(rows=1, cols=len(RECIPE_BARS), shared_yaxes=True, horizontal_spacing=0.025,
                        subplot_titles=[f"{titles.get(col, col)}<br>{op} {bar:g}" for col, bar, op in RECIPE_BARS])
    for j, (col, bar, _op) in enumerate(RECIPE_BARS, start=1):
        ok = [bar_met(r, col) for r in rows]
        fig.add_trace(go.Scatter(x=[r[col] for r in rows], y=names, mode="markers", showlegend=False,
                                 marker={"size": 11, "symbol": ["circle" if o else "circle-open" for o in ok],
                                         "color": ["#2a9d8f" if o else "#e76f51" for o in ok],
                                         "line": {"width": 2}},
                                 hovertemplate=f"%{{y}}<br>{col} = %{{x:.3f}}<extra></extra>"), row=1, col=j)
        fig.add_vline(x=bar, line_dash="dash", line_color="grey", row=1, col=j)
        fig.update_xaxes(title_text="nats/token" if col.startswith("ΔNLL") else "recall", row=1, col=j)
    fig.update_annotations(font_size=12)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title="Recipe runs against the LTM bars (filled: bar met)", height=170 + 34 * len(rows),
                      width=1200, margin={"l": 330, "t": 120})
    return fig


def fig_levers(gaps: Mapping[str, Sequence[dict[str, Any]]]) -> go.Figure:
    """Each lever's recall against its baseline: one dot per (memory, questions, facts) part of
    :func:`~stmltm_nb.metrics.levers.lever_gaps` (lever − baseline, a share of questions), the paired 95 % interval
    (relations resampled) as error bars, one colour per lever; a dot whose bar crosses 0 is no difference."""
    fig = go.Figure()
    for name, rows in gaps.items():
        rs = [r for r in rows if r["lo"] is not None]
        labels = [f'{r["memory"]}: {r["facts"]}, {"held-out" if r["questions"] == "heldout" else "trained"}'
                  for r in rs]
        fig.add_trace(go.Scatter(x=[r["delta"] for r in rs], y=labels, mode="markers", name=name,
                                 marker={"size": 10},
                                 error_x={"type": "data", "symmetric": False,
                                          "array": [r["hi"] - r["delta"] for r in rs],
                                          "arrayminus": [r["delta"] - r["lo"] for r in rs]},
                                 hovertemplate="%{y}<br>lever − baseline = %{x:+.2f}<extra>" + name + "</extra>"))
    fig.add_vline(x=0, line_dash="dash", line_color="grey")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title="Levers against the baseline: recall difference with its paired 95 % interval",
                      xaxis={"title": "lever − baseline (share of questions)", "range": [-1, 1]},
                      height=260 + 40 * max((len(r) for r in gaps.values()), default=0),
                      legend={"orientation": "h", "y": -0.25}, margin={"l": 330})
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


VERDICT_COLOURS = {"CONSOLIDATE": "#2ca02c", "SERVE RETRIEVAL": "#1f77b4", "WAIT": "#c7c7c7"}


def fig_verdict(maps: Sequence[Any], subtitle: str = "") -> go.Figure:
    """The verdict over (n, Q), one panel per :class:`~stmltm_nb.decision.verdict_map.VerdictMap` (rows: serving
    regime and what-if label; columns: λ in s per wrong answer). Green: consolidate; blue: serve retrieval; grey: wait (keep STM)."""
    from plotly.subplots import make_subplots

    from stmltm_nb.decision.switching import VERDICTS

    rows = list(dict.fromkeys((m.regime, m.label) for m in maps))
    lams = list(dict.fromkeys(m.lam for m in maps))
    fig = make_subplots(rows=len(rows), cols=len(lams), shared_xaxes=True, shared_yaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=0.12,
                        subplot_titles=[f"{r} STM, λ = {lam:g} s" + ("" if lab == "measured" else f"<br>{lab}")
                                        for r, lab in rows for lam in lams])
    k = len(VERDICTS)
    scale = [[v, VERDICT_COLOURS[w]] for i, w in enumerate(VERDICTS) for v in (i / k, (i + 1) / k)]
    for m in maps:
        fig.add_trace(go.Heatmap(x=list(m.ns), y=list(m.Qs), z=[list(r) for r in m.codes], zmin=-0.5,
                                 zmax=k - 0.5, colorscale=scale, showscale=False,
                                 customdata=[[VERDICTS[c] for c in r] for r in m.codes],
                                 hovertemplate="n = %{x} items, Q = %{y:.3g} queries: %{customdata}<extra></extra>"),
                      row=rows.index((m.regime, m.label)) + 1, col=lams.index(m.lam) + 1)
    for w in VERDICTS:  # a legend: one invisible marker per verdict word
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=w.lower(),
                                 marker={"size": 12, "symbol": "square", "color": VERDICT_COLOURS[w]}))
    fig.update_xaxes(type="log", title_text="STM items n")
    fig.update_yaxes(type="log")
    for r in range(1, len(rows) + 1):
        fig.update_yaxes(title_text="future queries Q", row=r, col=1)
    fig.update_layout(title="When does consolidation pay off? The verdict over (n, Q)" + (f"<br><sup>{subtitle}</sup>"
                      if subtitle else ""), height=300 * len(rows) + 160, width=300 * len(lams) + 220,
                      margin={"t": 110}, legend={"orientation": "h", "y": -0.08})
    return fig


FAST_VERDICT_GRID = {"ns": (1, 2, 4, 8, 16, 32, 64, 128), "Qs": tuple(10.0 ** k for k in range(7))}


def verdict_figure(curves: dict[str, Any], fast: bool = False) -> tuple[go.Figure, list[str]]:
    """The course's verdict figure (notebooks 00, 06, 09): :func:`~stmltm_nb.decision.verdict_map.course_maps`
    drawn by :func:`fig_verdict`, subtitled with the measured recalls behind it, and the maps' summary lines.
    ``fast``: a coarser grid (FAST mode), n still capped at the measured range."""
    from stmltm_nb.decision.curves import priors
    from stmltm_nb.decision.verdict_map import course_maps, measured_n_max, summary_lines

    grid = {}
    if fast:
        n_max = measured_n_max(curves)
        grid = {"ns": tuple(n for n in FAST_VERDICT_GRID["ns"] if n <= n_max), "Qs": FAST_VERDICT_GRID["Qs"]}
    maps = course_maps(curves, **grid)
    p = priors(curves)
    parts = [f"served memory (cartridge + notes) held-out recall {p.q_cart:.2f} [{p.q_cart_ci.lo:.2f}, "
             f"{p.q_cart_ci.hi:.2f}]"]
    parts += [f"{name} {iv.value:.2f}" for name, iv in (("cartridge alone", p.q_ltm_alone),
                                                        ("STM + retrieval", p.q_retrieval)) if iv is not None]
    return fig_verdict(maps, subtitle="; ".join(parts)), summary_lines(maps)


def recall_fit(curves: dict[str, Any], model: str | None = None) -> Fit:
    f = next(x for x in curves["recall"]["fits"] if x["model"] == (model or curves["recall"]["best_fit"]))
    return Fit(f["model"], f["params"], f["residuals"], f["rmse"], f["aic"])


__all__ = ["setup_plotly", "fig_recall", "fig_loss", "fig_cost", "fig_training", "fig_comparison", "fig_policies",
           "fig_timeline", "fig_verdict", "verdict_figure", "recall_fit", "RECALL_MODELS"]
