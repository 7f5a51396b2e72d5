"""The switching rule STM → LTM: one inequality in cost units, plus evidence gates (sympy + numpy, no torch).

Units. Costs are **seconds of compute** (per query for c_ctx, r_cart; once for c_upd). Loss is the error rate
L = 1 − recall in [0, 1], so Δ = L_miss − L_hit = 1 by default. λ prices loss in cost units: seconds per unit of
loss per query (with L an error rate: the seconds one wrong answer is worth). n counts STM **items**.

Per-query advantage of serving from a cartridge instead of STM (residual STM n_r = 0 after consolidation):

    A(n) = [c_ctx(n) − r_cart] + λ·Δ·(q_cart − q_ctx(n)) − λ·ε_d

with c_ctx(n) = κ0 + κ1·n (+ κ2·n²) and q_ctx(n) from a recall family (linear, exponential, hyperbolic, Hill);
ε_d is the distillation gap (extra loss of the cartridge beyond its recall). **Consolidate iff**

    Q · A(n) ≥ (1 + η) · c_upd          (seconds on both sides)

and every gate passes:

- G1 sample size (items): m ≥ m* = ln(1/δ) / KL(q_ctx(n) + γ ‖ q̂_cart(n)), the Chernoff sample size from which a
  cartridge as good as predicted passes the hold-out check (m probes, one per item, against STM's bar) with
  probability ≥ 1 − δ. The
  textbook Occam m* = (DL(Δφ)·ln2 + ln(1/δ)) / ε is logged beside it when DL is given: with DL(Δφ) in Mbit it
  asks for ~10⁸ items, vacuous for memorising a buffer (notebook 04), so it is shown, not enforced.
- G2 gradient SNR (dimensionless): SNR_m ≥ τ, SNR_m = √m·SNR_1 of the mean gradient over the m items, tested on
  its bootstrap lower bound over items when given (``snr_lo``)
- G3 compression (bits): G_MDL > 0 — **not enforced**: its storage form n·b > p never binds and its information
  form needs ~4·10⁵ items at the measured bits/item (notebook 04); logged with its value when measured
- G4 quality (error rate): L_cart ≤ L_ctx(n) − γ (γ is the spec's required margin; γ < 0 tolerates |γ| degradation)
- G5 hold-out: the ex-post check on held-out probes (:mod:`~stmltm_nb.decision.checks`, after training); unknown
  when deciding, so not blocking here

No items, nothing to gain: q̂_cart(n) is anchored at q̂_cart(0) = q_ctx(0) (a cartridge of nothing answers as an
empty STM) and interpolated linearly to the predicted points, so A(0) = c_ctx(0) − r_cart = −r_cart (κ0 = 0 when
c_ctx is the STM overhead, as measured) and ``decide`` waits at n = 0 for every Q.

Unknown Q (ski rental): accumulate the realised per-query advantage since the last consolidation,
rent = Σ_j max(0, A(n_j)), and consolidate once rent ≥ β·c_upd (β = 1: break-even, 2-competitive).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from stmltm_nb.decision.gates import Gate, g1, g2
from stmltm_nb.decision.symbolic import (  # noqa: F401 - re-exported: the rule's notation and expressions
    CLOSED_FORMS,
    COST_KINDS,
    RECALL_KINDS,
    SYMBOL_TABLE,
    Delta,
    Q,
    T,
    advantage_expr,
    advantage_fn,
    beta,
    break_even_n_solutions,
    break_even_Q_expr,
    c_ctx_expr,
    c_upd,
    delta_,
    dl_bits,
    eoq_cycle_expr,
    eps_,
    eps_d,
    eta,
    g,
    k_hill,
    kappa0,
    kappa1,
    kappa2,
    lam,
    m_star_expr,
    n,
    n50,
    nu,
    q0,
    q_cart,
    q_ctx_expr,
    q_ctx_fn,
    r_cart,
    rho,
    ski_rental_cycle_expr,
)


class SwitchingInputError(ValueError):
    """An input to the switching rule is NaN, infinite, negative or out of range."""


@dataclass
class CostModel:
    """c_ctx(n) = kappa0 + kappa1·n + kappa2·n² (seconds per query; n in items)."""

    kappa0: float = 0.0
    kappa1: float = 0.0
    kappa2: float = 0.0

    @property
    def kind(self) -> str:
        return "quadratic" if self.kappa2 else "linear"

    def __call__(self, n_items: float) -> float:
        return self.kappa0 + self.kappa1 * n_items + self.kappa2 * n_items * n_items


@dataclass
class RecallModel:
    """q_ctx(n) of a given family; unused parameters keep their defaults."""

    kind: str = "hyperbolic"
    q0: float = 1.0
    rho: float = 0.0
    nu: float = 1.0
    n50: float = 1.0
    k: float = 1.0

    def __call__(self, n_items: float) -> float:
        v = q_ctx_fn(self.kind)(n_items, self.q0, self.rho, self.nu, self.n50, self.k)
        return min(1.0, max(0.0, float(v)))


@dataclass
class SwitchInputs:
    """Everything the rule needs. Costs in seconds; losses as error rates in [0, 1]."""

    n: float  # STM items now
    Q: float  # expected future queries before the next consolidation
    c_upd: float  # one-off update cost, s
    r_cart: float  # per-query cartridge overhead, s
    cost: CostModel = field(default_factory=CostModel)
    recall: RecallModel = field(default_factory=RecallModel)
    q_cart: float = 1.0  # cartridge recall on questions it did not train on (probe-predicted or measured)
    q_cart_points: tuple[tuple[float, float], ...] = ()  # predicted (n items, q̂_cart) points; () → ((1, q_cart),)
    lam: float = 1.0  # s per unit loss per query
    Delta: float = 1.0
    eps_d: float = 0.0
    eta: float = 0.0
    gamma: float = 0.0  # required margin of LTM over STM, loss units, in [-1, 1]
    tau: float = 1.0  # SNR threshold (default: measured, notebook 04/06)
    delta: float = 0.05  # G1 confidence: 1 − δ
    # gate measurements (None = not measured: the gate is reported but does not block)
    m: float | None = None  # evidence units: items with a training question
    m_star: float | None = None  # G1 threshold; None → the Chernoff sample size (:func:`m_star_evidence`)
    snr: float | None = None  # SNR_m of the mean gradient over the m items
    snr_lo: float | None = None  # its bootstrap lower bound over items (G2 tests this when given)
    g_mdl: float | None = None  # bits; logged, never blocking
    dl_bits: float | None = None  # DL(Δφ), bits: for the textbook m* shown beside G1
    epsilon: float = 0.05  # the textbook m*'s error rate
    holdout_pass: bool | None = None

    def q_cart_at(self, n_items: float) -> float:
        """q̂_cart(n): linear through (0, q_ctx(0)) and ``q_cart_points`` (default: (1, q_cart)), flat beyond."""
        pts = sorted(self.q_cart_points) or [(1.0, self.q_cart)]
        xs, ys = [0.0] + [float(a) for a, _ in pts], [self.recall(0.0)] + [float(b) for _, b in pts]
        if n_items >= xs[-1]:
            return ys[-1]
        for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
            if n_items <= x1:
                return y0 + (y1 - y0) * (n_items - x0) / (x1 - x0)
        return ys[-1]


def _check(name: str, v: Any, lo: float = 0.0, hi: float = math.inf, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    import numbers

    if isinstance(v, bool) or not isinstance(v, numbers.Real):  # numpy scalars are numbers.Real too
        raise SwitchingInputError(f"{name} must be a number, got {type(v).__name__}")
    if math.isnan(v):
        raise SwitchingInputError(f"{name} is NaN")
    if not lo <= v <= hi:
        raise SwitchingInputError(f"{name} must be in [{lo}, {hi}], got {v}")


def validate(x: SwitchInputs) -> None:
    """Raise :class:`SwitchingInputError` with a clear message on any bad input."""
    for name in ("n", "Q", "c_upd", "r_cart", "lam", "Delta", "eps_d", "eta"):
        _check(name, getattr(x, name))
    for name in ("n", "Q", "c_upd", "r_cart", "lam", "Delta", "eps_d", "eta"):
        if math.isinf(getattr(x, name)):
            raise SwitchingInputError(f"{name} must be finite")
    _check("q_cart", x.q_cart, 0, 1)
    _check("gamma", x.gamma, -1, 1)
    _check("delta", x.delta, 0, 1)
    _check("epsilon", x.epsilon, 0, 1)
    if not (0 < x.delta < 1 and x.epsilon > 0):
        raise SwitchingInputError("delta must be in (0, 1) and epsilon > 0")
    for i, pt in enumerate(x.q_cart_points):
        if len(pt) != 2:
            raise SwitchingInputError(f"q_cart_points[{i}] must be an (n, q) pair, got {pt!r}")
        _check(f"q_cart_points[{i}].n", pt[0], 1e-9, 1e12)
        _check(f"q_cart_points[{i}].q", pt[1], 0, 1)
    _check("tau", x.tau, 0, 1e6)
    if x.tau <= 0:
        raise SwitchingInputError("tau must be > 0")
    for name in ("kappa0", "kappa1", "kappa2"):
        _check(f"cost.{name}", getattr(x.cost, name), 0, 1e9)
    if x.recall.kind not in RECALL_KINDS:
        raise SwitchingInputError(f"recall.kind must be one of {RECALL_KINDS}")
    _check("recall.q0", x.recall.q0, 0, 1)
    for name in ("rho", "nu", "n50", "k"):
        _check(f"recall.{name}", getattr(x.recall, name), 0, 1e12)
    if x.recall.kind in ("exponential",) and x.recall.nu <= 0 or x.recall.kind in ("hyperbolic", "hill") and x.recall.n50 <= 0:
        raise SwitchingInputError("recall scale (nu or n50) must be > 0")
    for name in ("m", "m_star", "snr", "snr_lo", "dl_bits"):
        _check(name, getattr(x, name), allow_none=True)
    if x.g_mdl is not None:
        _check("g_mdl", x.g_mdl, -math.inf, math.inf)


def _check_finite(values: dict[str, float], x: SwitchInputs) -> None:
    """Finite inputs can still overflow (n = Q = 1e308): such a comparison means nothing, so it is refused."""
    for name, v in values.items():
        if not math.isfinite(v):
            raise SwitchingInputError(f"{name} = {v} is not finite (n = {x.n:g}, Q = {x.Q:g}, c_upd = {x.c_upd:g}): "
                                      "the inputs are too large to compare; use realistic magnitudes")


@dataclass
class Decision:
    consolidate: bool
    terms: dict[str, float]  # every term of the inequality, seconds unless named otherwise
    gates: list[Gate]
    blocked_by: list[str]  # names of failing gates, and "inequality" if Q·A < (1+η)c_upd
    explanation: str

    def to_json(self) -> dict[str, Any]:
        return {"consolidate": self.consolidate, "terms": self.terms, "gates": [asdict(gt) for gt in self.gates],
                "blocked_by": self.blocked_by, "explanation": self.explanation}


def advantage(x: SwitchInputs, n_items: float | None = None) -> float:
    """A(n) in seconds per query (defaults to x.n), with q̂_cart(n) = :meth:`SwitchInputs.q_cart_at`; A(0) =
    c_ctx(0) − r_cart (no items: no quality term, and no distillation gap)."""
    r, nn = x.recall, x.n if n_items is None else n_items
    if nn <= 0:
        return x.cost(0.0) - x.r_cart
    return advantage_fn(x.cost.kind, r.kind)(
        nn, x.cost.kappa0, x.cost.kappa1, x.cost.kappa2, x.r_cart, x.lam, x.Delta,
        x.eps_d, r.q0, x.q_cart_at(nn), r.rho, r.nu, r.n50, r.k)


def decide(x: SwitchInputs) -> Decision:
    """Evaluate the switching inequality and the gates; returns the decision with every term."""
    validate(x)
    q_stm = x.recall(x.n)
    c_n = x.cost(x.n)
    A = advantage(x)
    lhs = x.Q * A
    rhs = (1 + x.eta) * x.c_upd
    _check_finite({"c_ctx(n)": c_n, "A(n)": A, "Q·A": lhs, "(1+η)·c_upd": rhs}, x)
    q_c = x.q_cart_at(x.n)
    L_ctx = x.Delta * (1 - q_stm)
    L_cart = x.Delta * (1 - q_c) + x.eps_d
    terms = {
        "c_ctx_n": c_n, "r_cart": x.r_cart, "cost_saving": c_n - x.r_cart, "q_ctx_n": q_stm, "q_cart": q_c,
        "quality_gain": A - (c_n - x.r_cart), "A": A, "lhs_QA": lhs,
        "rhs_upd": rhs, "L_ctx": L_ctx, "L_cart": L_cart,
        "Q_star": (rhs / A) if A > 0 else math.inf,
    }
    gates = [g1(x.m, x.m_star, q_stm, q_c, x.gamma, x.delta, x.dl_bits, x.epsilon), g2(x.snr, x.snr_lo, x.tau),
        Gate("G3 MDL", x.g_mdl is None or x.g_mdl > 0, x.g_mdl, 0.0, x.g_mdl is not None,
             "G_MDL > 0 (not enforced: vacuous on this model, notebook 04)", "bits", enforced=False),
        Gate("G4 quality", L_cart <= L_ctx - x.gamma + 1e-12, L_cart, L_ctx - x.gamma, True, "L_cart ≤ L_ctx(n) − γ",
             "error rate"),
        Gate("G5 hold-out", x.holdout_pass is None or bool(x.holdout_pass), x.holdout_pass, None,
             x.holdout_pass is not None, "hold-out check passed (evaluated after training, decision.checks)",
             "pass/fail"),
    ]
    blocked = [gt.name for gt in gates if gt.blocks]
    pays = lhs >= rhs and A > 0
    if not pays:
        blocked.append("inequality")
    ok = not blocked
    if ok:
        why = (f"consolidate: Q·A = {lhs:.4g} s ≥ (1+η)·c_upd = {rhs:.4g} s and all gates pass")
    elif blocked == ["inequality"]:
        why = (f"wait: the update does not pay yet (Q·A = {lhs:.4g} s < {rhs:.4g} s; needs Q ≥ {terms['Q_star']:.4g})"
               if A > 0 else f"wait: a cartridge has no per-query advantage here (A = {A:.4g} s ≤ 0)")
    else:
        why = "wait: blocked by " + ", ".join(blocked)
    return Decision(ok, terms, gates, blocked, why)


def break_even_n_numeric(x: SwitchInputs, n_max: float = 1e7) -> float:
    """Smallest n (items) with Q·A(n) ≥ (1+η)·c_upd: a log-spaced scan for the first paying point, then
    bisection inside that bracket (A need not be monotone once q̂_cart(n) has several predicted points).
    Returns inf when no n ≤ n_max pays (with κ0 = 0, A(0) = −r_cart ≤ 0: an empty STM never pays)."""
    validate(x)
    target = (1 + x.eta) * x.c_upd

    def f(v: float) -> float:
        return x.Q * advantage(x, v) - target

    grid = [0.0] + [float(v) for v in _log_grid(n_max)]
    hit = next((i for i, v in enumerate(grid) if v > 0 and f(v) >= 0), None)
    if hit is None:
        return math.inf
    lo, hi = grid[hit - 1], grid[hit]
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) >= 0:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-9 * max(1.0, hi):
            break
    return hi


def _log_grid(n_max: float, per_decade: int = 40) -> list[float]:
    import numpy as np

    top = math.log10(max(n_max, 1e-3))
    grid = np.logspace(-3, top, int((top + 3) * per_decade) + 2).tolist() if n_max > 1e-3 else []
    return sorted({v for v in grid if v <= n_max} | {n_max})


def break_even_report(x: SwitchInputs, n_cap: float, measured_max: float) -> dict[str, Any]:
    """n* (items) capped at ``n_cap`` (the STM capacity N_max in items) and flagged when it lies beyond
    ``measured_max`` (the largest n the recall curve was measured at): an extrapolated n* is a guess."""
    n_star = break_even_n_numeric(x, n_max=n_cap)
    return {"n_star": n_star, "capped": not math.isfinite(n_star), "n_cap": n_cap,
            "outside_measured": math.isfinite(n_star) and n_star > measured_max, "measured_max": measured_max}


@dataclass
class SkiRental:
    """Forecast-free trigger: consolidate once the realised rent Σ max(0, A(n_j)) reaches β·c_upd."""

    beta: float = 1.0
    rent: float = 0.0  # seconds accumulated since the last consolidation

    def observe(self, advantage_s: float, queries: float = 1.0) -> None:
        """Add ``queries`` queries served at per-query advantage ``advantage_s`` (seconds)."""
        if not (math.isfinite(advantage_s) and math.isfinite(queries) and queries >= 0):
            raise SwitchingInputError("advantage and queries must be finite, queries >= 0")
        self.rent += queries * max(0.0, advantage_s)

    def should_consolidate(self, c_upd_s: float) -> bool:
        return self.rent >= self.beta * c_upd_s

    def reset(self) -> None:
        self.rent = 0.0
