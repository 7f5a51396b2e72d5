"""The measured curves (``data/measured_curves.json``, schema 2, written by ``stmltm measure``) and the models
fitted to them, read without torch through one validated record
(:func:`~stmltm_nb.decision.curves_record.read_curves`) so the tuner, the policy simulator and the controller
share one reader. :func:`priors` is the only place that turns those sections into the rule's priors."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stmltm_nb.decision.curves_record import (
    REBUILD,
    RETRIEVAL,
    SERVED,
    STM_ALL,
    ComparisonRow,
    Interval,
    MeasuredCurves,
    read_curves,
)
from stmltm_nb.decision.defaults import DEFAULTS
from stmltm_nb.decision.switching import CostModel, RecallModel


def curves_path() -> Path:
    from stmltm_nb.shipped import data_dir

    return data_dir() / "measured_curves.json"


def load_curves(path: str | Path | None = None) -> dict[str, Any]:
    """The measured-curves JSON written by ``stmltm measure``, checked by the one reader
    (:func:`~stmltm_nb.decision.curves_record.read_curves`: an older schema or a bad field raises
    :class:`~stmltm_nb.decision.curves_record.CurvesError` naming it). Returns the plain dict; use
    :func:`read_curves` for the typed record."""
    p = Path(path) if path is not None else curves_path()
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{p} not found: run `{REBUILD}` to create it") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{p} is not valid JSON ({e}); re-run `{REBUILD}`") from e
    read_curves(raw, source=str(p))
    return raw


Curves = Mapping[str, Any] | MeasuredCurves


def _record(curves: Curves) -> MeasuredCurves:
    return curves if isinstance(curves, MeasuredCurves) else read_curves(curves)


def recall_model_from(curves: Curves, family: str | None = None) -> RecallModel:
    """The fitted q_ctx(n) family from the measured curves (best AIC unless ``family`` is given)."""
    rec = _record(curves).recall
    if rec is None:
        raise KeyError("measured curves lack the 'recall' section")
    fam = family or rec.best
    if fam not in rec.params:
        raise KeyError(f"measured curves have no recall fit {fam!r}; fitted: {sorted(rec.params)}")
    p = rec.params[fam]
    return RecallModel(fam, q0=p.get("q0", 1.0), rho=p.get("rho", 0.0), nu=p.get("nu", 1.0),
                       n50=p.get("n50", 1.0), k=p.get("k", 1.0))


def half_recall_n(curves: Mapping[str, Any], family: str | None = None) -> float:
    """N_max: the n where the fitted q_ctx(n) falls to half its n → 0 value (n50 for hyperbolic and Hill,
    ν·ln 2 for exponential, q0/2ρ for linear), in items. ``inf`` when it never halves."""
    fits = {f["model"]: f for f in curves["recall"]["fits"]}
    fam = family or curves["recall"]["best_fit"]
    p = fits[fam]["params"]
    if fam in ("hyperbolic", "hill"):
        return float(p["n50"])
    if fam == "exponential":
        return float(p["nu"]) * math.log(2)
    if fam == "linear":
        return float(p["q0"]) / (2 * float(p["rho"])) if p["rho"] > 0 else math.inf
    raise ValueError(f"half_recall_n: unknown recall family {fam!r}")


def ltm_recall(curves: Curves, default: float = DEFAULTS.q_cart, questions: str = "heldout",
               mode: str = SERVED) -> float:
    """Recall of memory ``mode`` on the consolidated facts (``recall_cart``; the row's overall recall where that is
    null). Default: the served memory (cartridge + residual STM) on held-out wordings, the rule's q_cart;
    ``mode="LTM (cartridge)"``: the cartridge alone; ``questions="train"``: on its trained wordings, an optimistic
    figure the rule does not use. ``default`` (the q_cart prior of :data:`~stmltm_nb.decision.defaults.DEFAULTS`)
    when the file has no such row."""
    row = _record(curves).row(mode, questions)
    if row is None:
        return default
    return row.recall if row.recall_cart is None else row.recall_cart


def _cart_interval(row: ComparisonRow | None) -> Interval | None:
    """A row's recall on the consolidated facts with its interval (overall recall where those are null)."""
    if row is None:
        return None
    return row.cart or row.overall


@dataclass
class Priors:
    """The switching rule's priors from one measured-curves file; a field is None when its section is missing
    (a partial file, a measurement still running). Seconds, per query unless named otherwise; recall in [0, 1]
    with its 95 % interval (relations, then facts) where the file has one."""

    cost: CostModel | None = None  # c_ctx(n): slope of the chosen regime's linear fit, s/query (κ0 = 0)
    regime: str = "cached"  # the serving regime of ``cost``: "cached" or "stateless"
    recall: RecallModel | None = None  # q_ctx(n), best fit
    q_cart: float | None = None  # the SERVED memory (cartridge + residual STM) on held-out wordings, cartridge facts
    q_cart_ci: Interval | None = None  # ... with its interval
    q_cart_points: tuple[tuple[float, float], ...] | None = None  # probe-predicted (n items, q̂_cart) points
    q_ltm_alone: Interval | None = None  # the cartridge alone, held-out, cartridge facts (shown, not used)
    q_stm: Interval | None = None  # STM (all items), held-out, cartridge facts (the like-for-like STM figure)
    q_retrieval: Interval | None = None  # STM + retrieval, held-out, cartridge facts
    retrieval_cost: CostModel | None = None  # c_ret(n) = a + b·n, s/query over no memory (BM25 top-k + search)
    retrieval_k: int | None = None
    dnll: Interval | None = None  # retention: ΔNLL of the served memory vs no memory, nats/token, with interval
    dnll_ltm: Interval | None = None  # ... of the cartridge alone (shown)
    dnll_step0: Interval | None = None  # ... of the untrained cartridge (the control, shown)
    c_upd: float | None = None  # s per consolidation (as measured: teacher + questions + training)
    c_upd_fixed: float | None = None  # s: the student-training part, fixed per consolidation
    c_upd_per_item: float | None = None  # s/item: teacher targets and questions per consolidated item
    r_cart: float | None = None  # s/query overhead of the cartridge
    snr_m: float | None = None  # G2: SNR of the mean gradient over the measured items at initialisation
    snr_m_lo: float | None = None  # its bootstrap lower bound

    def require(self, *names: str) -> Priors:
        """Self, or KeyError naming every missing prior."""
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise KeyError(f"measured curves lack the priors {missing}")
        return self


def priors(curves: Curves, regime: str = "cached") -> Priors:
    """Every prior the rule takes from ``stmltm measure`` (or ``stmltm demo``) output, read through the one
    validated record (:func:`~stmltm_nb.decision.curves_record.read_curves`). q_cart is the served memory's
    held-out recall on the consolidated facts (row "LTM + residual STM", held-out: ``recall_cart``), not the
    cartridge alone. Tolerates partial files (sections missing)."""
    if regime not in ("cached", "stateless"):
        raise ValueError(f"regime must be 'cached' or 'stateless', got {regime!r}")
    c = _record(curves)
    p = Priors(regime=regime)
    fit = None if c.cost is None else getattr(c.cost, regime)
    if fit is not None:
        p.cost = CostModel(0.0, max(0.0, fit.b))
    if c.recall is not None:
        p.recall = recall_model_from(c)
    served = c.served
    if served is not None:
        p.q_cart_ci = _cart_interval(served)
        p.q_cart = p.q_cart_ci.value
    p.q_ltm_alone = _cart_interval(c.row("LTM (cartridge)"))
    p.q_stm = _cart_interval(c.row(STM_ALL))
    p.q_retrieval = _cart_interval(c.row(RETRIEVAL))
    if c.retrieval is not None:
        p.retrieval_cost = CostModel(max(0.0, c.retrieval.a), max(0.0, c.retrieval.b))
        p.retrieval_k = c.retrieval.k
    if c.retention is not None:
        for attr, mode in (("dnll", SERVED), ("dnll_ltm", "LTM (cartridge)"), ("dnll_step0", "LTM (step 0)")):
            r = c.retention.row(mode)
            setattr(p, attr, None if r is None else Interval(r.delta_nll, r.lo, r.hi))
    p.q_cart_points = c.q_cart_points
    cons = c.consolidation
    if cons is not None:
        p.c_upd, p.c_upd_fixed = cons.c_upd_s, cons.train_s
        if cons.teacher_s is not None and c.n_facts:
            p.c_upd_per_item = (cons.teacher_s + (cons.questions_s or 0.0)) / c.n_facts
    p.r_cart, p.snr_m, p.snr_m_lo = c.r_cart_s, c.snr_m, c.snr_m_lo
    return p


def band(q: float, ref: Interval | None) -> tuple[float | None, float | None]:
    """An interval around ``q`` with the widths of the measured ``ref`` (a fit's value at another n carries the
    measured uncertainty), clipped to [0, 1]; (None, None) without a measurement."""
    if ref is None:
        return None, None
    return max(0.0, q - (ref.value - ref.lo)), min(1.0, q + (ref.hi - ref.value))


def held_out_recall(rec: MeasuredCurves, recall: RecallModel) -> RecallModel:
    """q_ctx(n) on the footing of the other arms: the recall curve is asked with each fact's first template, the
    cartridge and retrieval with held-out wordings, which are harder for every memory. The fit is scaled by STM's
    own held-out / template recall on the cartridge facts, both measured with every fact in context (the comparison
    rows "STM (all items)"); unchanged when either row is missing or the template recall is 0."""
    from dataclasses import replace

    held, tmpl = rec.row("STM (all items)", "heldout"), rec.row("STM (all items)", "train")
    if held is None or tmpl is None or not held.recall_cart or not tmpl.recall_cart:
        return recall
    return replace(recall, q0=recall.q0 * min(1.0, held.recall_cart / tmpl.recall_cart))


def measured_inputs(curves: Curves, n: float, Q: float, lam: float, eta: float = DEFAULTS.eta,
                    gamma: float = DEFAULTS.gamma, source: str = "measured curves", regime: str = "cached") -> Any:
    """:class:`~stmltm_nb.decision.switching.SwitchInputs` at ``n`` STM items and ``Q`` queries from a measured-curves
    file (or a demo's results): q_cart = the served memory's held-out recall on the cartridge facts with its
    interval, q_ctx(n) and c_ctx(n) from the STM fits (q_ctx on held-out wordings, :func:`held_out_recall`; the STM
    row's interval widths moved onto it), the
    retrieval arm from its cost curve (else the "STM + retrieval" row's seconds per query over "no memory") and
    held-out recall, G1 with m = ``n``, G2 and G6 where measured. ``lam`` in s per wrong answer (callers pass
    ``DEFAULTS.lam`` for the shipped price); η and γ default to :data:`~stmltm_nb.decision.defaults.DEFAULTS`;
    ``regime``: the STM cost fit, ``"cached"`` (the items' KV cache kept between queries) or ``"stateless"``."""
    from stmltm_nb.decision.switching import RetrievalArm, SwitchInputs

    rec = read_curves(curves, source=source)
    pri = priors(rec, regime).require("cost", "recall", "q_cart", "c_upd", "r_cart")
    served = pri.q_cart_ci
    retr = None
    row, none = rec.row("STM + retrieval"), rec.row("no memory")
    if pri.q_retrieval is not None:
        cost = pri.retrieval_cost
        if cost is None and row is not None and none is not None and None not in (row.s_per_query, none.s_per_query):
            cost = CostModel(max(0.0, row.s_per_query - none.s_per_query))
        if cost is not None:
            retr = RetrievalArm(cost, pri.q_retrieval.value, pri.q_retrieval.lo, pri.q_retrieval.hi)
    recall = held_out_recall(rec, pri.recall)
    q_stm = recall(n)
    ctx_lo, ctx_hi = band(q_stm, pri.q_stm)
    dnll = pri.dnll
    return SwitchInputs(n=n, Q=Q, c_upd=pri.c_upd, r_cart=pri.r_cart, cost=pri.cost, recall=recall,
                        q_cart=pri.q_cart, q_cart_lo=served.lo, q_cart_hi=served.hi, q_ctx_lo=ctx_lo,
                        q_ctx_hi=ctx_hi, lam=lam, eta=eta, gamma=gamma, m=n, snr=pri.snr_m, snr_lo=pri.snr_m_lo,
                        holdout_pass=served.value > min(1.0, q_stm + gamma), retrieval=retr,
                        dnll=None if dnll is None else dnll.value, dnll_lo=None if dnll is None else dnll.lo,
                        dnll_hi=None if dnll is None else dnll.hi)


def curve_values(curves: Curves) -> dict[str, Any]:
    """The :mod:`~stmltm_nb.decision.inputs` fields (by path) that a measured-curves file supplies: c_upd (s),
    r_cart (s/query), the cost slope κ1 (s/item, cached regime), the recall fit, q_cart (the served memory) with
    its interval, the STM interval at the measured n, the retrieval arm, retention (G6) and SNR (G2).
    ``stmltm decide --curves FILE`` starts from these; a ``--json`` file and flags given override them."""
    from dataclasses import asdict

    p = priors(curves)
    out: dict[str, Any] = {}
    if p.c_upd is not None:
        out["c_upd"] = p.c_upd
    if p.r_cart is not None:
        out["r_cart"] = p.r_cart
    if p.cost is not None:
        out.update({"cost.kappa0": p.cost.kappa0, "cost.kappa1": p.cost.kappa1, "cost.kappa2": p.cost.kappa2})
    if p.recall is not None:
        out.update({f"recall.{k}": v for k, v in asdict(p.recall).items()})
    if p.q_cart_ci is not None:
        out.update(q_cart=p.q_cart_ci.value, q_cart_lo=p.q_cart_ci.lo, q_cart_hi=p.q_cart_ci.hi)
    if p.q_retrieval is not None and p.retrieval_cost is not None:
        out.update({"retrieval.q": p.q_retrieval.value, "retrieval.lo": p.q_retrieval.lo,
                    "retrieval.hi": p.q_retrieval.hi, "retrieval.kappa0": p.retrieval_cost.kappa0,
                    "retrieval.kappa1": p.retrieval_cost.kappa1})
    if p.dnll is not None:
        out.update(dnll=p.dnll.value, dnll_lo=p.dnll.lo, dnll_hi=p.dnll.hi)
    if p.snr_m is not None:
        out["snr"] = p.snr_m
        if p.snr_m_lo is not None:
            out["snr_lo"] = p.snr_m_lo
    return out
