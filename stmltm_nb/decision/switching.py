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

- G1 sample size: m ≥ m* = (DL(Δφ)·ln2 + ln(1/δ)) / ε (evidence units)
- G2 gradient SNR: SNR_m ≥ τ
- G3 compression: G_MDL > 0 (the form passed in; the controller uses the storage form, see notebook 04)
- G4 quality: L_cart ≤ L_ctx(n) − γ (γ is the spec's required margin; γ < 0 tolerates |γ| degradation)
- G5 hold-out: the ex-post check on held-out probes passed (unknown before training: not blocking)

Unknown Q (ski rental): accumulate the realised per-query advantage since the last consolidation,
rent = Σ_j max(0, A(n_j)), and consolidate once rent ≥ β·c_upd (β = 1: break-even, 2-competitive).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

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
    q_cart: float = 1.0  # cartridge recall (probe-predicted or measured)
    lam: float = 1.0  # s per unit loss per query
    Delta: float = 1.0
    eps_d: float = 0.0
    eta: float = 0.0
    gamma: float = 0.0  # required margin of LTM over STM, loss units, in [-1, 1]
    tau: float = 1.0  # SNR threshold (default: measured, notebook 04/06)
    # gate measurements (None = not measured: the gate is reported but does not block)
    m: float | None = None  # evidence units
    m_star: float | None = None
    snr: float | None = None  # SNR of the mean over the m units
    g_mdl: float | None = None
    holdout_pass: bool | None = None


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
    for name in ("m", "m_star", "snr"):
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
class Gate:
    name: str
    passed: bool
    value: float | bool | None
    threshold: float | None
    measured: bool
    rule: str


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
    """A(n) in seconds per query (defaults to x.n)."""
    r = x.recall
    return advantage_fn(x.cost.kind, r.kind)(
        x.n if n_items is None else n_items, x.cost.kappa0, x.cost.kappa1, x.cost.kappa2, x.r_cart, x.lam, x.Delta,
        x.eps_d, r.q0, x.q_cart, r.rho, r.nu, r.n50, r.k)


def decide(x: SwitchInputs) -> Decision:
    """Evaluate the switching inequality and the gates; returns the decision with every term."""
    validate(x)
    q_stm = x.recall(x.n)
    c_n = x.cost(x.n)
    A = advantage(x)
    lhs = x.Q * A
    rhs = (1 + x.eta) * x.c_upd
    _check_finite({"c_ctx(n)": c_n, "A(n)": A, "Q·A": lhs, "(1+η)·c_upd": rhs}, x)
    L_ctx = x.Delta * (1 - q_stm)
    L_cart = x.Delta * (1 - x.q_cart) + x.eps_d
    terms = {
        "c_ctx_n": c_n, "r_cart": x.r_cart, "cost_saving": c_n - x.r_cart, "q_ctx_n": q_stm, "q_cart": x.q_cart,
        "quality_gain": x.lam * x.Delta * (x.q_cart - q_stm) - x.lam * x.eps_d, "A": A, "lhs_QA": lhs,
        "rhs_upd": rhs, "L_ctx": L_ctx, "L_cart": L_cart,
        "Q_star": (rhs / A) if A > 0 else math.inf,
    }
    gates = [
        Gate("G1 sample size", x.m is None or x.m_star is None or x.m >= x.m_star, x.m, x.m_star,
             x.m is not None and x.m_star is not None, "m ≥ m*"),
        Gate("G2 SNR", x.snr is None or x.snr >= x.tau, x.snr, x.tau, x.snr is not None, "SNR ≥ τ"),
        Gate("G3 MDL", x.g_mdl is None or x.g_mdl > 0, x.g_mdl, 0.0, x.g_mdl is not None, "G_MDL > 0"),
        Gate("G4 quality", L_cart <= L_ctx - x.gamma + 1e-12, L_cart, L_ctx - x.gamma, True, "L_cart ≤ L_ctx(n) − γ"),
        Gate("G5 hold-out", x.holdout_pass is None or bool(x.holdout_pass), x.holdout_pass, None,
             x.holdout_pass is not None, "hold-out check passed"),
    ]
    blocked = [gt.name for gt in gates if not gt.passed]
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
    """Smallest n with Q·A(n) ≥ (1+η)·c_upd by bisection (A is non-decreasing in n for the supported
    families with κ ≥ 0). Returns inf when even n_max does not pay."""
    validate(x)
    target = (1 + x.eta) * x.c_upd

    def f(v: float) -> float:
        return x.Q * advantage(x, v) - target

    if f(0.0) >= 0:
        return 0.0
    if f(n_max) < 0:
        return math.inf
    lo, hi = 0.0, n_max
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) >= 0:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-9 * max(1.0, hi):
            break
    return hi


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
