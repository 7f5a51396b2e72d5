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

Three arms (:func:`choose_arm`). Besides STM and the cartridge, **STM + retrieval** (a BM25 index puts the top-k
items into the context for each query) is an arm when its inputs are given. Each arm has a per-query cost
(STM c_ctx(n); retrieval c_ret(n) = a + b·n, measured; cartridge r_cart + (1+η)·c_upd/Q, the update amortised
over Q) and a held-out recall with its measured interval. Priced cost per query = cost + λ·Δ·(1 − q_eff)
(+ λ·ε_d for the cartridge). **Equal quality**: an arm whose interval reaches the best arm's lower bound
(hi + q_tol ≥ lo_best, the best = the highest point recall among the available arms) is not resolved below it, so
its q_eff is the best's (the difference is inside the noise and is not priced); an arm resolved below pays for its
own errors. The named arm is the one with the lowest priced cost, i.e. **the cheapest at the measured quality**;
ties go to the cartridge, then STM, then retrieval. The cartridge is available only when no gate blocks and A > 0.
``consolidate`` is True iff the named arm is the cartridge. With two arms and no intervals this is the inequality
above (Q·A ≥ (1+η)·c_upd ⇔ the cartridge's priced cost ≤ STM's), and ``decide`` evaluates it as that inequality.

G6 retention (nats/token): the served memory's general-text NLL rise over no memory, paired over passages, blocks
when its lower bound exceeds ``dnll_tol`` (default: the recipe bar ``metrics.ltm_bars.MAX_DNLL``); unmeasured: not
evaluated. A gate without a value is reported as "not measured" and listed in ``Decision.not_evaluated``.

Unknown Q (ski rental): accumulate the realised per-query advantage since the last consolidation,
rent = Σ_j max(0, A(n_j)), and consolidate once rent ≥ β·c_upd (β = 1: break-even, 2-competitive).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from stmltm_nb.decision.defaults import DEFAULTS
from stmltm_nb.decision.gates import Gate, g1, g2, g6
from stmltm_nb.decision.symbolic import RECALL_KINDS, advantage_fn, q_ctx_fn


class SwitchingInputError(ValueError):
    """An input to the switching rule is NaN, infinite, negative or out of range."""


ARMS = ("stm", "retrieval", "cartridge")


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
class RetrievalArm:
    """STM + retrieval: per-query cost c_ret(n) = ``cost``(n) (s/query over no memory: top-k prefill + search) and
    its held-out recall ``q`` with the measured interval [lo, hi] (None: the point value)."""

    cost: CostModel
    q: float
    lo: float | None = None
    hi: float | None = None


def default_cost() -> CostModel:
    """c_ctx(n) until measured: the prior of :data:`~stmltm_nb.decision.defaults.DEFAULTS`."""
    return CostModel(DEFAULTS.kappa0, DEFAULTS.kappa1, DEFAULTS.kappa2)


def default_recall() -> RecallModel:
    """q_ctx(n) until measured: the prior of :data:`~stmltm_nb.decision.defaults.DEFAULTS`."""
    d = DEFAULTS
    return RecallModel(d.recall_kind, q0=d.q0, rho=d.rho, nu=d.nu, n50=d.n50, k=d.k)


@dataclass
class SwitchInputs:
    """Everything the rule needs. Costs in seconds; losses as error rates in [0, 1]. Every default is
    :data:`~stmltm_nb.decision.defaults.DEFAULTS`' (n, Q, c_upd and r_cart must be given)."""

    n: float  # STM items now
    Q: float  # expected future queries before the next consolidation
    c_upd: float  # one-off update cost, s
    r_cart: float  # per-query cartridge overhead, s
    cost: CostModel = field(default_factory=default_cost)
    recall: RecallModel = field(default_factory=default_recall)
    q_cart: float = DEFAULTS.q_cart  # cartridge recall on questions it did not train on (probe-predicted or measured)
    q_cart_points: tuple[tuple[float, float], ...] = ()  # predicted (n items, q̂_cart) points; () → ((1, q_cart),)
    lam: float = DEFAULTS.lam  # s per unit loss per query (s per wrong answer)
    Delta: float = DEFAULTS.Delta
    eps_d: float = DEFAULTS.eps_d
    eta: float = DEFAULTS.eta
    gamma: float = DEFAULTS.gamma  # required margin of LTM over STM, loss units, in [-1, 1]
    tau: float = DEFAULTS.tau  # SNR threshold (notebook 04/06)
    delta: float = DEFAULTS.delta  # G1 confidence: 1 − δ
    # gate measurements (None = not measured: the gate is reported but does not block)
    m: float | None = None  # evidence units: items with a training question
    m_star: float | None = None  # G1 threshold; None → the Chernoff sample size (:func:`m_star_evidence`)
    snr: float | None = None  # SNR_m of the mean gradient over the m items
    snr_lo: float | None = None  # its bootstrap lower bound over items (G2 tests this when given)
    g_mdl: float | None = None  # bits; logged, never blocking
    dl_bits: float | None = None  # DL(Δφ), bits: for the textbook m* shown beside G1
    epsilon: float = DEFAULTS.epsilon  # the textbook m*'s error rate
    holdout_pass: bool | None = None
    # measured intervals of the held-out recall (absolute bounds at this n; None: the point value alone)
    q_ctx_lo: float | None = None
    q_ctx_hi: float | None = None
    q_cart_lo: float | None = None
    q_cart_hi: float | None = None
    q_tol: float = DEFAULTS.q_tol  # slack of the equal-quality test, recall units
    retrieval: RetrievalArm | None = None  # the third arm (STM + retrieval); None: not compared
    # G6: the served memory's general-text NLL rise over no memory, nats/token (None: not measured)
    dnll: float | None = None
    dnll_lo: float | None = None
    dnll_hi: float | None = None
    dnll_tol: float = DEFAULTS.dnll_tol

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
    for name in ("q_ctx_lo", "q_ctx_hi", "q_cart_lo", "q_cart_hi"):
        _check(name, getattr(x, name), 0, 1, allow_none=True)
    _check("q_tol", x.q_tol, 0, 1)
    for name in ("dnll", "dnll_lo", "dnll_hi"):
        _check(name, getattr(x, name), -1e6, 1e6, allow_none=True)
    _check("dnll_tol", x.dnll_tol, 0, 1e6)
    if x.retrieval is not None:
        r = x.retrieval
        for name in ("kappa0", "kappa1", "kappa2"):
            _check(f"retrieval.{name}", getattr(r.cost, name), 0, 1e9)
        _check("retrieval.q", r.q, 0, 1)
        _check("retrieval.lo", r.lo, 0, 1, allow_none=True)
        _check("retrieval.hi", r.hi, 0, 1, allow_none=True)
    for name, lo, hi in (("q_ctx", x.q_ctx_lo, x.q_ctx_hi), ("q_cart", x.q_cart_lo, x.q_cart_hi),
                         ("retrieval", *((x.retrieval.lo, x.retrieval.hi) if x.retrieval else (None, None)))):
        if lo is not None and hi is not None and lo > hi:
            raise SwitchingInputError(f"{name} interval: lower bound {lo} exceeds upper bound {hi}")


def _check_finite(values: dict[str, float], x: SwitchInputs) -> None:
    """Finite inputs can still overflow (n = Q = 1e308): such a comparison means nothing, so it is refused."""
    for name, v in values.items():
        if not math.isfinite(v):
            raise SwitchingInputError(f"{name} = {v} is not finite (n = {x.n:g}, Q = {x.Q:g}, c_upd = {x.c_upd:g}): "
                                      "the inputs are too large to compare; use realistic magnitudes")


@dataclass
class Arm:
    """One arm of :func:`choose_arm`: per-query cost (s/query, the cartridge's update amortised over Q), held-out
    recall with its interval, the recall it is priced at (q_eff) and its priced cost per query (s)."""

    name: str
    cost_s: float
    q: float
    lo: float
    hi: float
    available: bool = True
    why_unavailable: str = ""
    equal_quality: bool = False  # not resolved below the best available arm
    q_eff: float = 0.0
    priced_s: float = math.inf


@dataclass
class Decision:
    consolidate: bool
    terms: dict[str, float]  # every term of the inequality, seconds unless named otherwise
    gates: list[Gate]
    blocked_by: list[str]  # names of failing gates, "inequality" if Q·A < (1+η)c_upd, "arm: …" if another arm wins
    explanation: str
    arm: str = "stm"  # the memory to serve: "stm", "retrieval" or "cartridge" (consolidate ⇔ "cartridge")
    arms: dict[str, Arm] = field(default_factory=dict)  # every compared arm with its costs and quality
    not_evaluated: list[str] = field(default_factory=list)  # gates without a measured value ("not measured")

    def to_json(self) -> dict[str, Any]:
        return {"consolidate": self.consolidate, "arm": self.arm, "terms": self.terms,
                "gates": [gt.to_json() for gt in self.gates], "not_evaluated": self.not_evaluated,
                "arms": {k: asdict(v) for k, v in self.arms.items()},
                "blocked_by": self.blocked_by, "explanation": self.explanation}


VERDICTS = ("CONSOLIDATE", "SERVE RETRIEVAL", "WAIT")  # what the CLI, the tuner and the demo print


def verdict(consolidate: bool, arm: str) -> str:
    """The decision in one word for people: CONSOLIDATE (serve the cartridge), SERVE RETRIEVAL (STM + retrieval is
    the cheapest arm at the measured quality) or WAIT (keep the items in STM)."""
    return VERDICTS[0] if consolidate else VERDICTS[1] if arm == "retrieval" else VERDICTS[2]


def _bounds(q: float, lo: float | None, hi: float | None) -> tuple[float, float]:
    """An interval that contains its point value (a missing bound: the point)."""
    return min(q, q if lo is None else lo), max(q, q if hi is None else hi)


def choose_arm(x: SwitchInputs, q_stm: float, q_c: float, cartridge_ok: bool,
               why_not: str = "") -> tuple[str, dict[str, Arm]]:
    """The arm to serve (see the module docstring): among the available arms, the lowest priced cost per query,
    cost + λ·Δ·(1 − q_eff), where q_eff is the best arm's recall for every arm at equal quality (its interval
    reaches the best's lower bound, with slack ``q_tol``) and its own recall otherwise. Ties: cartridge, STM,
    retrieval. ``cartridge_ok``: no gate blocks and A > 0 (else the cartridge is listed, unavailable)."""
    if x.Q > 0:
        amort = (1 + x.eta) * x.c_upd / x.Q
    else:
        amort = 0.0 if x.c_upd == 0 else math.inf
    arms = {"stm": Arm("stm", x.cost(x.n), q_stm, *_bounds(q_stm, x.q_ctx_lo, x.q_ctx_hi))}
    if x.retrieval is not None:
        r = x.retrieval
        arms["retrieval"] = Arm("retrieval", r.cost(x.n), r.q, *_bounds(r.q, r.lo, r.hi))
    arms["cartridge"] = Arm("cartridge", x.r_cart + amort, q_c, *_bounds(q_c, x.q_cart_lo, x.q_cart_hi),
                            available=cartridge_ok, why_unavailable="" if cartridge_ok else why_not)
    avail = [a for a in arms.values() if a.available]
    best = max(avail, key=lambda a: a.q)
    for a in avail:
        a.equal_quality = a.hi + x.q_tol >= best.lo
        a.q_eff = best.q if a.equal_quality else a.q
        a.priced_s = a.cost_s + x.lam * x.Delta * (1 - a.q_eff) + (x.lam * x.eps_d if a.name == "cartridge" else 0.0)
    order = {"cartridge": 0, "stm": 1, "retrieval": 2}
    return min(avail, key=lambda a: (a.priced_s, order[a.name])).name, arms


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
    gates.append(g6(x.dnll, x.dnll_lo, x.dnll_hi, x.dnll_tol))
    blocked = [gt.name for gt in gates if gt.blocks]
    pays = lhs >= rhs and A > 0
    three = x.retrieval is not None or any(v is not None for v in (x.q_ctx_lo, x.q_ctx_hi, x.q_cart_lo, x.q_cart_hi))
    gate_blocks = list(blocked)
    arm, arms = choose_arm(x, q_stm, q_c, not gate_blocks and A > 0,
                           ", ".join(gate_blocks) if gate_blocks else ("" if A > 0 else "A ≤ 0"))
    if not three:  # two arms, point values: exactly the inequality (the priced rule's two-arm form)
        arm = "cartridge" if (pays and not gate_blocks) else "stm"
    if not pays and arm != "cartridge":
        blocked.append("inequality")
    if arm == "retrieval" or (arm == "stm" and pays and not gate_blocks):
        blocked.append(f"arm: {arm}")
    ok = arm == "cartridge"
    if ok:
        why = (f"consolidate: Q·A = {lhs:.4g} s ≥ (1+η)·c_upd = {rhs:.4g} s and every evaluated gate passes" if pays else
               "consolidate: the cartridge is the cheapest arm at the measured quality and every evaluated gate passes")
    elif arm == "retrieval" or blocked == ["arm: stm"]:
        why = (f"{'serve STM + retrieval' if arm == 'retrieval' else 'wait'}: {_ARM_NAMES[arm]} has the lowest "
               "priced cost per query (cost + λ·Δ·(1 − q_eff); q_eff: the best recall for arms at equal quality): "
               + ", ".join(f"{_ARM_NAMES[k]} {a.priced_s:.4g} s" + ("" if a.equal_quality else " (resolved worse)")
                           for k, a in arms.items() if a.available))
        if gate_blocks or not pays:
            why += "; the cartridge is blocked by " + ", ".join(gate_blocks + ["inequality"] * (not pays))
    elif blocked == ["inequality"]:
        why = (f"wait: the update does not pay yet (Q·A = {lhs:.4g} s < {rhs:.4g} s; needs Q ≥ {terms['Q_star']:.4g})"
               if A > 0 else f"wait: a cartridge has no per-query advantage here (A = {A:.4g} s ≤ 0)")
    else:
        why = "wait: blocked by " + ", ".join(blocked)
    not_eval = [gt.name for gt in gates if not gt.measured]
    if not_eval:
        why += f" [not evaluated (not measured): {', '.join(not_eval)}]"
    return Decision(ok, terms, gates, blocked, why, arm, arms, not_eval)


_ARM_NAMES = {"stm": "STM", "retrieval": "STM + retrieval", "cartridge": "the cartridge"}


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
    """n* (items) capped at ``n_cap`` (the window capacity in items: the items that fit N_win after a reserve) and flagged when it lies beyond
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
