"""The interactive threshold tuner: sliders → the switching decision, its blocking gate, and two plots.

No torch/transformers: it reads measured curves from JSON (``data/measured_curves.json``), so it starts in
about a second (Voilà, Binder). :func:`make_tuner` returns a :class:`Tuner` whose ``widget`` the notebook
displays; tests move ``tuner.sliders[...]`` and assert on ``tuner.decision`` and ``tuner.fig``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from stmltm_nb.decision.curves import Priors, band, curves_path, load_curves, priors, recall_model_from
from stmltm_nb.decision.defaults import DEFAULTS
from stmltm_nb.decision.inputs import check_curves
from stmltm_nb.decision.switching import (
    CostModel,
    RetrievalArm,
    SwitchingInputError,
    SwitchInputs,
    advantage,
    decide,
    default_recall,
    verdict,
)

# name: (label, min, max, step, log?) ; log sliders take exponents of 10
SLIDERS: dict[str, tuple[str, float, float, float, bool]] = {
    "n": ("STM items n", 1, 400, 1, False),
    "Q": ("future queries Q", 0, 6, 0.05, True),
    "c_upd": ("update cost c_upd [s]", 0, 5, 0.05, True),
    "r_cart": ("cartridge overhead r_cart [s/query]", 0, 0.5, 0.001, False),
    "kappa1": ("STM cost slope κ1 [s/item]", 0, 0.05, 0.0001, False),
    "lam": ("price of an error λ [s]", 0, 60, 0.5, False),
    "q_cart": ("served recall q_cart (cartridge + residual STM, held-out)", 0, 1, 0.01, False),
    "q_ret": ("STM + retrieval recall (held-out)", 0, 1, 0.01, False),
    "c_ret": ("STM + retrieval cost c_ret(n) [s/query]", 0, 0.5, 0.001, False),
    "dnll": ("served ΔNLL lower bound [nats/token]", -0.5, 1, 0.005, False),
    "gamma": ("quality margin γ", -0.5, 0.5, 0.01, False),
    "tau": ("SNR threshold τ", 0.1, 10, 0.1, False),
    "snr": ("measured SNR of the batch", 0, 20, 0.1, False),
    "eta": ("hysteresis η", 0, 1, 0.05, False),
}


def start_values() -> dict[str, float]:
    """Every slider's start value without measured curves (log sliders: exponents of 10): the rule's inputs from
    :data:`~stmltm_nb.decision.defaults.DEFAULTS`; the measured-only sliders (SNR, retrieval, ΔNLL) at a value
    that lets their gate pass (their gates enter only with measured curves, except G2)."""
    d = DEFAULTS
    return {"n": d.n, "Q": math.log10(d.Q), "c_upd": math.log10(d.c_upd), "r_cart": d.r_cart, "kappa1": d.kappa1,
            "lam": d.lam, "q_cart": d.q_cart, "gamma": d.gamma, "tau": d.tau, "snr": 5.0, "eta": d.eta,
            "q_ret": 0.0, "c_ret": 0.0, "dnll": 0.0}


def presets(curves: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Slider presets from the measured curves (:func:`~stmltm_nb.decision.curves.priors`): the cached and the
    stateless serving regime. q_cart is the served memory's held-out recall; the retrieval arm and the served
    retention (ΔNLL lower bound) where the file has them. KeyError names the priors a partial file lacks."""
    need = ("cost", "q_cart", "c_upd", "r_cart")
    cached, stateless = (priors(curves, regime).require(*need) for regime in ("cached", "stateless"))
    d = DEFAULTS
    base = {"n": d.n, "Q": math.log10(d.Q), "c_upd": math.log10(max(1.0, cached.c_upd)), "q_cart": cached.q_cart,
            "r_cart": cached.r_cart, "lam": d.lam, "gamma": d.gamma, "tau": d.tau,
            "snr": float(min(20.0, cached.snr_m or 0.0)), "eta": d.eta}
    if cached.q_retrieval is not None and cached.retrieval_cost is not None:
        base.update(q_ret=cached.q_retrieval.value, c_ret=min(0.5, cached.retrieval_cost(64.0)))
    if cached.dnll is not None:
        base["dnll"] = cached.dnll.lo
    return {"measured (cached STM)": dict(base, kappa1=cached.cost.kappa1),
            "measured (stateless STM)": dict(base, kappa1=stateless.cost.kappa1)}


class Tuner:
    """Sliders + decision text + figure. ``values()`` reads the sliders in natural units."""

    def __init__(self, curves: dict[str, Any] | None = None, preset: str | None = None):
        import ipywidgets as w
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        self.curves = check_curves(curves) if curves is not None else None  # NaN or a missing field: CurvesError
        self.recall = recall_model_from(curves) if curves else default_recall()
        self.priors = priors(curves) if curves else Priors()  # intervals, retrieval, retention: measured only
        self.retrieval = self.priors.q_retrieval is not None and self.priors.retrieval_cost is not None
        self.presets = presets(curves) if curves else {}
        chosen = self.presets.get(preset or "measured (cached STM)", {}) if self.presets else {}
        start = {**start_values(), **chosen}
        self.sliders: dict[str, Any] = {}
        for name, (label, lo, hi, step, log) in SLIDERS.items():
            default = start[name]
            cls = w.FloatLogSlider if log else w.FloatSlider
            kw = dict(base=10, min=lo, max=hi, step=step, value=10 ** default) if log else dict(
                min=lo, max=hi, step=step, value=default)
            s = cls(description=label, continuous_update=False, style={"description_width": "260px"},
                    layout=w.Layout(width="560px"), readout_format=".3g", **kw)
            s.observe(lambda _change: self.update(), names="value")
            self.sliders[name] = s
        self.preset = w.Dropdown(options=list(self.presets) or ["(defaults)"], description="preset")
        self.preset.observe(lambda ch: self.apply_preset(ch["new"]), names="value")
        self.decision = w.HTML()
        self.fig = make_subplots(rows=1, cols=2, subplot_titles=(
            "Amortised saving Q·A(n) vs update cost", "Decision region (green: consolidate)"))
        self.fig.add_trace(go.Scatter(name="Q·A(n)", mode="lines"), row=1, col=1)
        self.fig.add_trace(go.Scatter(name="(1+η)·c_upd", mode="lines", line={"dash": "dash"}), row=1, col=1)
        self.fig.add_trace(go.Scatter(name="now", mode="markers", marker={"size": 12}), row=1, col=1)
        self.fig.add_trace(go.Heatmap(showscale=False, colorscale=[[0, "#f4d6d6"], [1, "#bfe5bf"]], zmin=0, zmax=1,
                                      name="consolidate?"), row=1, col=2)
        self.fig.add_trace(go.Scatter(name="now ", mode="markers", marker={"size": 12, "color": "black"}), row=1, col=2)
        self.fig.update_xaxes(title_text="STM items n", row=1, col=1)
        self.fig.update_yaxes(title_text="seconds", type="log", row=1, col=1)
        self.fig.update_xaxes(title_text="STM items n", row=1, col=2)
        self.fig.update_yaxes(title_text="future queries Q", type="log", row=1, col=2)
        self.fig.update_layout(height=420, width=1000, margin={"t": 40})
        self.out = w.Output()
        self.widget = w.VBox([self.preset, w.HBox([w.VBox(list(self.sliders.values()))]), self.decision, self.out])
        self.last = None
        self.update()

    def apply_preset(self, name: str) -> None:
        for k, v in self.presets.get(name, {}).items():
            s = self.sliders[k]
            s.value = 10**v if SLIDERS[k][4] else v

    def values(self) -> dict[str, float]:
        return {k: float(s.value) for k, s in self.sliders.items()}

    def inputs(self, **override: float) -> SwitchInputs:
        """The rule's inputs from the sliders. With measured curves, each recall carries the measured interval's
        widths around the slider (STM: around q_ctx(n)); the retrieval arm and G6 (retention) enter only when the
        file measured them (the retrieval cost slider is c_ret at any n: measured, it barely moves with n)."""
        v = {**self.values(), **override}
        p = self.priors
        q_stm = self.recall(v["n"])
        ctx_lo, ctx_hi = band(q_stm, p.q_stm)
        cart_lo, cart_hi = band(v["q_cart"], p.q_cart_ci)
        retr = None
        if self.retrieval:
            retr = RetrievalArm(CostModel(v["c_ret"]), v["q_ret"], *band(v["q_ret"], p.q_retrieval))
        d = p.dnll
        return SwitchInputs(n=v["n"], Q=v["Q"], c_upd=v["c_upd"], r_cart=v["r_cart"], cost=CostModel(0.0, v["kappa1"]),
                            recall=self.recall, q_cart=v["q_cart"], lam=v["lam"], eta=v["eta"], gamma=v["gamma"],
                            tau=v["tau"], snr=v["snr"], q_ctx_lo=ctx_lo, q_ctx_hi=ctx_hi, q_cart_lo=cart_lo,
                            q_cart_hi=cart_hi, retrieval=retr, dnll=None if d is None else d.value,
                            dnll_lo=None if d is None else v["dnll"], dnll_hi=None if d is None else d.hi)

    def measured_text(self) -> str:
        """The measured figures behind the sliders: recall (held-out, cartridge facts) of every arm with its
        interval, and retention (ΔNLL vs no memory, nats/token)."""
        p = self.priors

        def iv(label: str, i: Any, fmt: str = ".2f") -> str:
            return f"{label} {i.value:{fmt}} [{i.lo:{fmt}}, {i.hi:{fmt}}]" if i is not None else f"{label} not measured"

        if self.curves is None:
            return "built-in defaults: no measured recall, retrieval or retention"
        return ("measured, held-out, cartridge facts: " + "; ".join([
            iv("served (cartridge + residual STM)", p.q_cart_ci), iv("cartridge alone", p.q_ltm_alone),
            iv("STM (all items)", p.q_stm), iv("STM + retrieval", p.q_retrieval)])
            + "<br>retention ΔNLL vs no memory [nats/token]: " + "; ".join([
                iv("served", p.dnll, "+.3f"), iv("cartridge alone", p.dnll_ltm, "+.3f"),
                iv("step 0 (untrained)", p.dnll_step0, "+.3f")]))

    def update(self) -> None:
        try:
            x = self.inputs()
            d = decide(x)
        except SwitchingInputError as e:
            self.last = None
            self.decision.value = f"<b style='color:#a00'>Invalid input:</b> {e}"
            return
        self.last = d
        colour = "#1a7f37" if d.consolidate else "#a33"
        shown = verdict(d.consolidate, d.arm)
        blocked = "" if d.consolidate else f"<br>Blocking: <b>{', '.join(d.blocked_by)}</b>"
        t = d.terms
        arms = "; ".join(f"{k}: {a.cost_s:.3g} s/query, recall {a.q:.2f} [{a.lo:.2f}, {a.hi:.2f}], priced "
                         f"{a.priced_s:.3g} s" if a.available else f"{k}: unavailable ({a.why_unavailable})"
                         for k, a in d.arms.items())
        not_eval = f"<br>Not evaluated (not measured): {', '.join(d.not_evaluated)}" if d.not_evaluated else ""
        self.decision.value = (
            f"<b style='color:{colour};font-size:1.2em'>{shown}</b> — {d.explanation}{blocked}<br>"
            f"A(n) = {t['A']:.4g} s/query (cost saving {t['cost_saving']:.3g} + quality {t['quality_gain']:.3g}); "
            f"Q·A = {t['lhs_QA']:.4g} s vs (1+η)·c_upd = {t['rhs_upd']:.4g} s; "
            f"q_ctx(n) = {t['q_ctx_n']:.2f}, Q* = {t['Q_star']:.4g}<br>Arm: <b>{d.arm}</b> ({arms}){not_eval}<br>"
            f"{self.measured_text()}")
        ns = np.linspace(1, SLIDERS["n"][2], 120)
        qa = np.array([x.Q * advantage(x, v) for v in ns])
        with self.fig.batch_update():
            self.fig.data[0].x, self.fig.data[0].y = ns, np.where(qa > 0, qa, np.nan)
            self.fig.data[1].x, self.fig.data[1].y = ns, np.full_like(ns, t["rhs_upd"])
            self.fig.data[2].x, self.fig.data[2].y = [x.n], [t["lhs_QA"] if t["lhs_QA"] > 0 else np.nan]
            grid_n = np.linspace(1, SLIDERS["n"][2], 60)
            grid_q = np.logspace(0, SLIDERS["Q"][2], 60)
            z = np.array([[1.0 if decide(self.inputs(n=nv, Q=qv)).consolidate else 0.0 for nv in grid_n]
                          for qv in grid_q])
            self.fig.data[3].x, self.fig.data[3].y, self.fig.data[3].z = grid_n, grid_q, z
            self.fig.data[4].x, self.fig.data[4].y = [x.n], [max(1.0, x.Q)]
        import sys

        import plotly.io as pio

        # The figure goes into the Output widget's state, not through ``with self.out:`` (output captured while a
        # cell runs): under Voila 0.5 that capture, synced back to the kernel while the browser's page connected,
        # stopped the notebook's execution now and then (voila#1428; in one loop here 2 pages of 6 stalled before, 0 of 36 after).
        # Plain Plotly JSON, rendered offline by JupyterLab/Voila's plotly extension (no CDN script); HTML on Colab.
        bundle = pio.renderers["colab" if "google.colab" in sys.modules else "plotly_mimetype"].to_mimebundle(
            self.fig.to_dict())
        self.out.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)


def make_tuner(curves: dict[str, Any] | None | str | Path = "measured", preset: str | None = None) -> Tuner:
    """Build the tuner. ``curves``: ``"measured"`` reads ``data/measured_curves.json`` (missing or unusable: a
    warning naming the problem, then built-in defaults), a path reads that curves file, a dict is used as is,
    None means built-in defaults (:func:`start_values`). An explicit file or dict with a missing field or a NaN
    raises :class:`~stmltm_nb.decision.curves_record.CurvesError` naming the field; values are never clamped
    silently."""
    if isinstance(curves, str) and curves == "measured":
        try:
            curves = check_curves(load_curves(), source="data/measured_curves.json")
        except (FileNotFoundError, ValueError) as e:  # CurvesError is a ValueError
            import warnings

            msg = str(e).replace(str(curves_path()), "data/measured_curves.json")
            warnings.warn(f"measured curves unusable ({msg}); using built-in defaults", stacklevel=2)
            curves = None
    elif isinstance(curves, (str, Path)):
        curves = check_curves(load_curves(curves), source=str(curves))
    return Tuner(curves, preset)
