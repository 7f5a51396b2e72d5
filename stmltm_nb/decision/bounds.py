"""Competitive bounds of the online rules (:data:`~stmltm_nb.decision.online.RULES`) on the simulator's cost model.
Torch-free; the one-cycle games are derived with sympy (notebook 08.2 shows them).

**Plain ski rental** (one cycle, rent arriving continuously, buy cost c): a rule that buys once the rent reaches θ·c
pays at most max(1 + 1/θ, 1 + θ) times the optimum min(y, c) whatever the total rent y: 2 at θ = 1 (break-even). Randomised: θ drawn with density e^θ/(e−1) on [0, 1] pays e/(e−1) ≈ 1.58 times the optimum in
expectation, for every y. With a forecast and trust λ (Purohit, Svitkina, Kumar 2018): θ = λ when the forecast says
the rent will reach c, θ = 1/λ otherwise: 1 + λ when the forecast is right, never worse than 1 + 1/λ.

**The simulator's model differs in three ways**, and the bound changes with them (derived in :func:`stream_bound`):

1. *Many cycles, items arriving.* Every schedule pays the *floor* F (each query served as if every live item were
   already in the cartridge); the rest, X, is rent Σ q_t·A_t plus update costs. If A ≥ 0 and a larger residual
   never costs less per query at the same number of live items (condition M, :func:`check_conditions`), the
   per-cycle argument for TCP acknowledgement (Dooly, Goldman, Scott 1998; Karlin, Kenyon, Randall 2001) carries
   over: in each cycle of the rule the oracle either consolidates (paying ≥ c_upd) or serves a residual at least as
   large (paying ≥ the rule's rent). X_on / X_opt is bounded as in plain ski rental, and the total-cost ratio
   (F + X_on) / (F + X_opt) is at most that.
2. *Rent comes one step at a time.* The rule decides before a step's queries arrive, so the step that crosses the
   threshold can add a lump ℓ of rent: the case where the oracle consolidates gains δ = max ℓ / c_upd0
   (1 + θ + δ instead of 1 + θ). A query burst timed against the rule reaches it.
3. *Update cost grows with n* (c_upd = c0 + c1·n). The oracle pays the per-item part of each item it consolidates;
   the items after its last consolidation L it never does. Only the rule's cycle that holds L can miss them (later
   cycles see no oracle consolidation at all), so an additive (1 + θ_max)·c1·n_tail remains, n_tail the items of
   that cycle from L on (0 when the oracle never consolidates).

Together, for a rule whose consolidations all happen at R ≥ θ·c_upd with θ_min ≤ θ ≤ θ_max::

    X_on ≤ max(1 + 1/θ_min, 1 + θ_max + δ) · X_opt + (1 + θ_max)·c1·n_tail

(deterministic rules, every stream). **Randomised ski rental loses its e/(e−1) here**: the textbook game ends at
the buy, and in TCP acknowledgement the optimum must acknowledge at least once; in this simulator the stream goes
on after the rule's consolidation and the oracle may never consolidate. Then the rule pays its rent, the update,
and rent on the items that arrive after it, at most what the oracle pays on them: 1 + (e^u − 1)/((e − 1)·u) in
expectation for a stream whose whole rent is u·c (:func:`randomised_continuing_game`), which rises to 2 at u = 1.
So its factor on this model is 2 + δ (with the same additive term); the multi-cycle step is checked on the
streams, not proved. The renewal rule has no bound: its renewal trigger can fire on an arbitrarily small
rent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from stmltm_nb.decision.online import RuleSpec

E_RATIO = math.e / (math.e - 1.0)

# ---- the one-cycle games, in sympy -------------------------------------------------------------------------------

y, theta, lam, z, delta = sp.symbols("y theta lambda z delta", positive=True)  # y: the cycle's rent in units of c


def deterministic_game() -> dict[str, Any]:
    """Buy once the rent reaches θ·c (units of c = 1). Worst stream: the one that stops right after the buy
    (y = θ). Returns the ratio in each case, the worst case and the θ that minimises it."""
    on = sp.Piecewise((y, y < theta), (theta + 1, True))
    opt = sp.Min(y, 1)
    below = sp.simplify((theta + 1) / theta)  # θ ≤ 1: the worst y is θ (OPT = θ)
    above = sp.simplify(theta + 1)  # θ ≥ 1: the worst y is ≥ 1 (OPT = 1)
    best = sp.solve(sp.Eq(below, above), theta)
    return {"on": on, "opt": opt, "ratio_theta_le_1": below, "ratio_theta_ge_1": above,
            "best_theta": best, "best_ratio": above.subs(theta, best[0])}


def lump_game() -> dict[str, Any]:
    """The same with rent arriving in steps: the step that crosses θ·c adds at most δ·c more, so when the oracle
    consolidates (OPT ≥ c) the rule pays up to θ + δ + 1."""
    return {"oracle_buys": 1 + theta + delta, "oracle_rents": 1 + 1 / theta}


def randomised_game() -> dict[str, Any]:
    """θ drawn with density p(z) = e^z/(e−1) on [0, 1]: the expected cost over the optimum, for a stream that stops
    at y ≤ 1 and at y ≥ 1 (both simplify to e/(e−1))."""
    p = sp.exp(z) / (sp.E - 1)
    short = sp.integrate((z + 1) * p, (z, 0, y)) + y * sp.integrate(p, (z, y, 1))
    long = sp.integrate((z + 1) * p, (z, 0, 1))
    return {"density": p, "ratio_y_le_1": sp.simplify(short / y), "ratio_y_ge_1": sp.simplify(long),
            "total_probability": sp.simplify(sp.integrate(p, (z, 0, 1)))}


def randomised_continuing_game() -> dict[str, Any]:
    """Randomised ski rental when the stream continues after the buy and the oracle never consolidates (its whole
    rent u·c, u ≤ 1): the rule pays c + (at most) the oracle's rent once it buys, the oracle's rent otherwise.
    Expected ratio 1 + P(z < u)/u with P the threshold's CDF; increasing in u, 2 at u = 1."""
    u = sp.symbols("u", positive=True)
    cdf = sp.integrate(sp.exp(z) / (sp.E - 1), (z, 0, u))
    ratio = sp.simplify(1 + cdf / u)
    return {"u": u, "ratio": ratio, "at_u_1": sp.simplify(ratio.subs(u, 1)),
            "as_u_to_0": sp.limit(ratio, u, 0), "slope": sp.simplify(sp.diff(ratio, u))}


def forecast_game() -> dict[str, Any]:
    """Purohit, Svitkina, Kumar 2018 in units of c: θ = λ if the forecast says y ≥ 1, else 1/λ."""
    return {"consistent": 1 + lam,  # forecast right: y ≥ 1 → pays λ + 1 vs 1; y < 1 → never buys, pays y = OPT
            "robust_forecast_long": sp.simplify((lam + 1) / lam),  # says y ≥ 1, stream stops at y = λ
            "robust_forecast_short": sp.simplify(1 / lam + 1)}  # says y < 1, stream runs on: buys at 1/λ, OPT = 1


# ---- the bound on the simulator's cost model -------------------------------------------------------------------------

def factor(spec: RuleSpec, delta_: float = 0.0) -> float:
    """The multiplicative part on this model: max(1 + 1/θ_min, 1 + θ_max + δ) (randomised: 2 + δ; renewal: ∞)."""
    if spec.mode == "renewal":
        return math.inf
    if spec.randomised:
        return 2.0 + delta_
    lo, hi = spec.theta
    return max(1 + 1 / lo, 1 + hi + delta_)


def plain_bound(spec: RuleSpec) -> float:
    """The rule's factor on this model without lumps or per-item cost (δ = 0): 2 (break-even), 1 + β, 2
    (randomised), 1 + 1/λ (forecast); ∞ for renewal."""
    return factor(spec, 0.0)


def textbook_bound(spec: RuleSpec) -> float:
    """The one-cycle ski-rental ratio: as :func:`plain_bound`, but e/(e−1) for the randomised rule."""
    return E_RATIO if spec.randomised else factor(spec, 0.0)


@dataclass
class StreamBound:
    """The bound of one rule on one stream: ratio ≤ ``factor`` + ``additive`` / X_opt (:func:`stream_bound`)."""

    factor: float
    delta: float  # largest one-step rent of the rule's run, in units of c_upd0
    additive: float  # (1 + θ_max)·c1·n_tail, seconds
    n_tail: int  # items of the rule's cycle holding the oracle's last consolidation, from it on
    x_opt: float  # the oracle's rent + update cost (total − floor), seconds

    @property
    def ratio(self) -> float:
        """Bound on X_on / X_opt, hence on the total-cost ratio (F + X_on) / (F + X_opt)."""
        if not math.isfinite(self.factor):
            return math.inf
        return self.factor + (self.additive / self.x_opt if self.x_opt > 0 else (math.inf if self.additive else 0))


def stream_bound(spec: RuleSpec, world: Any, rents: list[float], n_tail: int, x_opt: float) -> StreamBound:
    """The derived bound of ``spec`` on one stream: ``rents`` the rule's per-step rent (``SimResult.rents``),
    ``n_tail`` the items of the rule's cycle that holds the oracle's last consolidation, from it on, ``x_opt`` the oracle's total minus the floor."""
    d = max(rents, default=0.0) / world.c_upd0
    hi = spec.theta[1]
    return StreamBound(factor(spec, d), d, (1 + hi) * world.c_upd_item * n_tail, n_tail, x_opt)


def check_conditions(world: Any, n_max: int = 600) -> dict[str, Any]:
    """Condition M of the bound on ``world`` for every N ≤ ``n_max`` live items: A(N−m, m) ≥ 0 and non-decreasing
    in the residual m (a larger residual never costs less per query), and c_upd0 > 0, c_upd_item ≥ 0. Returns
    the checks and the worst violation found (0 when none)."""
    ns = np.arange(n_max + 1)
    q_tab = np.array([world.recall(int(n)) for n in ns])
    cost_tab = np.array([world.cost(int(n)) for n in ns])
    worst_neg, worst_drop = 0.0, 0.0
    for N in range(1, n_max + 1):
        m = np.arange(N + 1)
        cart = N - m
        compute = np.where(m > 0, cost_tab[m], 0.0) + np.where(cart > 0, world.r_cart, 0.0)
        loss = world.lam * world.Delta * (1 - (cart * world.q_cart + m * q_tab[m]) / N)
        f = compute + loss
        A = f - f[0]
        worst_neg = min(worst_neg, float(A.min()))
        worst_drop = min(worst_drop, float(np.diff(A).min()))
    return {"A_nonnegative": worst_neg >= -1e-12, "A_monotone": worst_drop >= -1e-12,
            "c_upd": world.c_upd0 > 0 and world.c_upd_item >= 0, "worst_A": worst_neg, "worst_step": worst_drop,
            "n_max": n_max}
