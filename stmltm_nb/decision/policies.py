"""Policy evaluation: simulate item/query streams and compare consolidation policies with a hindsight oracle.

World (from measured or synthetic curves): per query, serving costs c_ctx(n_res) seconds plus r_cart when a
cartridge exists, and the quality loss costs λ·Δ·(1 − q̄) seconds, where q̄ averages recall over all items
(n_cart at q_cart, n_res at q_ctx(n_res)). A consolidation at the start of a step costs
c_upd(n_res) = c_upd0 + c_upd_item·n_res seconds and moves every residual item into the cartridge. An item
that contradicts a consolidated one stays in STM (the newer item wins) and retires the stale cartridge item.

Policies decide at the start of each step and see only a :class:`ScenarioView` of the past: reading the
stream's length or its future raises :class:`LookaheadError`. The inequality row runs the controller's own
online rule (:mod:`~stmltm_nb.decision.online`). The hindsight oracle alone knows the whole stream and solves
the schedule exactly by dynamic programming over consolidation times (O(T²)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stmltm_nb.decision.defaults import DEFAULTS
from stmltm_nb.decision.online import OnlineRule, RuleSpec, rule_spec
from stmltm_nb.decision.switching import CostModel, RecallModel


@dataclass
class World:
    cost: CostModel  # c_ctx(n), s/query
    recall: RecallModel  # q_ctx(n)
    q_cart: float  # recall served from the cartridge
    r_cart: float  # s/query
    c_upd0: float  # s per consolidation
    c_upd_item: float = 0.0  # s per consolidated item
    lam: float = DEFAULTS.lam  # s per unit loss per query
    Delta: float = DEFAULTS.Delta

    def c_upd(self, n_res: float) -> float:
        return self.c_upd0 + self.c_upd_item * n_res

    def per_query(self, n_cart: float, n_res: float) -> tuple[float, float]:
        """(compute seconds, quality seconds) of one query in state (n_cart, n_res)."""
        compute = (self.cost(n_res) if n_res > 0 else 0.0) + (self.r_cart if n_cart > 0 else 0.0)
        total = n_cart + n_res
        if total <= 0:
            return compute, 0.0
        q_bar = (n_cart * self.q_cart + n_res * self.recall(n_res)) / total
        return compute, self.lam * self.Delta * (1.0 - q_bar)

    def advantage(self, n_cart: float, n_res: float) -> float:
        """Per-query saving (s) if the residual items were consolidated now: A for this state."""
        c0, l0 = self.per_query(n_cart, n_res)
        c1, l1 = self.per_query(n_cart + n_res, 0)
        return (c0 + l0) - (c1 + l1)


@dataclass
class Scenario:
    name: str
    items: np.ndarray  # items arriving during each step (ints >= 0)
    queries: np.ndarray  # queries during each step (>= 0)
    contradictions: np.ndarray  # of the arriving items, how many contradict a consolidated item

    def __post_init__(self):
        raw = {"items": self.items, "queries": self.queries, "contradictions": self.contradictions}
        for name, v in raw.items():
            a = np.asarray(v, dtype=float)
            if a.ndim != 1:
                raise ValueError(f"scenario {self.name!r}: {name} must be one count per step (1-d), got shape {a.shape}")
            if not np.isfinite(a).all():
                raise ValueError(f"scenario {self.name!r}: {name} must be finite, got {a[~np.isfinite(a)][0]} at step "
                                 f"{int(np.flatnonzero(~np.isfinite(a))[0])}")
            if (a < 0).any():
                raise ValueError(f"scenario {self.name!r}: {name} must be >= 0, got {a[a < 0][0]} at step "
                                 f"{int(np.flatnonzero(a < 0)[0])}")
        self.items = np.asarray(self.items, dtype=int)
        self.queries = np.asarray(self.queries, dtype=float)
        self.contradictions = np.asarray(self.contradictions, dtype=int)
        if not (self.items.shape == self.queries.shape == self.contradictions.shape):
            raise ValueError(f"scenario {self.name!r}: items, queries and contradictions need one entry per step, got "
                             f"{len(self.items)}, {len(self.queries)}, {len(self.contradictions)}")
        if len(self.items) == 0:
            raise ValueError(f"scenario {self.name!r}: length (steps) must be >= 1, got 0")
        if (self.contradictions > self.items).any():
            raise ValueError(f"scenario {self.name!r}: contradictions must be <= items in every step")

    @property
    def steps(self) -> int:
        return len(self.items)


def scenarios(steps: int = 400, seed: int = 0) -> list[Scenario]:
    """Four stream shapes: steady, bursty, drifting with contradictions, query-heavy (one stream each; the
    seeded families of :mod:`~stmltm_nb.decision.evaluation` draw many)."""
    if steps < 1:
        raise ValueError(f"steps (scenario length) must be >= 1, got {steps}")
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    steady = Scenario("steady", (t % 2 == 0).astype(int), np.full(steps, 2.0), np.zeros(steps, int))
    burst_items = np.where(t % 50 == 0, 20, 0)
    burst_q = np.where((t // 25) % 2 == 0, 4.0, 0.5)
    bursty = Scenario("bursty", burst_items, burst_q, np.zeros(steps, int))
    rate = np.linspace(1.0, 0.1, steps)
    d_items = rng.binomial(1, rate)
    contra = np.where(t > steps // 4, rng.binomial(d_items, 0.15), 0)
    drifting = Scenario("drifting+contradictions", d_items, np.linspace(0.5, 6.0, steps), contra)
    heavy = Scenario("query-heavy", (t % 5 == 0).astype(int), np.full(steps, 10.0), np.zeros(steps, int))
    return [steady, bursty, drifting, heavy]


@dataclass
class State:
    t: int
    n_cart: int
    n_res: int
    queries_seen: float


class LookaheadError(AttributeError):
    """A policy read the stream's length or its future: only the hindsight oracle may."""


class ScenarioView:
    """What a policy may see of a scenario at step ``t``: its name and the arrivals of steps before t.
    Reading the length (``steps``, ``len``) or the full arrays raises :class:`LookaheadError`."""

    _FORBIDDEN = ("steps", "items", "queries", "contradictions")

    def __init__(self, sc: Scenario, t: int = 0):
        object.__setattr__(self, "_sc", sc)
        object.__setattr__(self, "t", t)

    @property
    def name(self) -> str:
        return self._sc.name

    def past(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(items, queries, contradictions) of the steps before ``t``."""
        sc, t = self._sc, self.t
        return sc.items[:t].copy(), sc.queries[:t].copy(), sc.contradictions[:t].copy()

    def __getattr__(self, name: str):
        if name in ScenarioView._FORBIDDEN:
            raise LookaheadError(f"a policy read the scenario's {name!r}: only the hindsight oracle may see the "
                                 "stream's length or future; use past()")
        raise AttributeError(name)

    def __len__(self) -> int:
        raise LookaheadError("a policy read the scenario's length: only the hindsight oracle may")


Policy = Callable[[State, World, ScenarioView], bool]


@dataclass
class SimResult:
    policy: str
    total: float  # seconds (compute + quality + updates)
    compute: float
    quality: float
    updates: float
    consolidations: list[int] = field(default_factory=list)  # steps at which it consolidated
    rents: list[float] = field(default_factory=list)  # per step: queries × A of the state served (s)
    buys: list[float] = field(default_factory=list)  # c_upd paid at each consolidation (s)
    costs: list[float] = field(default_factory=list)  # per step: serving + quality + update cost (s)


def _step(world: World, n_cart: int, n_res: int, q: float) -> tuple[float, float]:
    c, l = world.per_query(n_cart, n_res)
    return q * c, q * l


def _cums(sc: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative items and contradictions: ``[t]`` counts those arrived before step t."""
    return np.concatenate([[0], np.cumsum(sc.items)]), np.concatenate([[0], np.cumsum(sc.contradictions)])


def _state(items: np.ndarray, contra: np.ndarray, s: int | None, t: int) -> tuple[int, int]:
    """(n_cart, n_res) while serving step t, given the last consolidation at the start of step s (None: none
    yet). A contradiction replaces the item it contradicts: in STM before any consolidation, else in the
    cartridge (the newer item is served from STM until the next consolidation)."""
    if s is None:
        return 0, int(items[t + 1] - contra[t + 1])
    live_at_s = int(items[s] - contra[s])
    return max(0, live_at_s - int(contra[t + 1] - contra[s])), int(items[t + 1] - items[s])


def _pending(items: np.ndarray, contra: np.ndarray, s: int | None, e: int) -> int:
    """Residual items waiting at the start of step e (what a consolidation at e trains on)."""
    if s is None:
        return int(items[e] - contra[e])
    return int(items[e] - items[s])


def simulate(world: World, sc: Scenario, policy: Policy, name: str = "") -> SimResult:
    """Run ``policy`` over the stream; returns total cost and its parts (seconds). The policy sees a
    :class:`ScenarioView` of the past only."""
    items, contra = _cums(sc)
    last: int | None = None
    res = SimResult(name, 0.0, 0.0, 0.0, 0.0)
    seen = 0.0
    view = ScenarioView(sc)
    for t in range(sc.steps):
        object.__setattr__(view, "t", t)
        pending = _pending(items, contra, last, t)
        n_cart_before = _state(items, contra, last, t - 1)[0] if t > 0 else 0
        if pending > 0 and policy(State(t, n_cart_before, pending, seen), world, view):
            res.updates += world.c_upd(pending)
            res.buys.append(world.c_upd(pending))
            last = t
            res.consolidations.append(t)
        n_cart, n_res = _state(items, contra, last, t)
        c, l = _step(world, n_cart, n_res, float(sc.queries[t]))
        res.rents.append(float(sc.queries[t]) * world.advantage(n_cart, n_res) if n_res > 0 else 0.0)
        res.costs.append(c + l + (res.buys[-1] if res.consolidations and res.consolidations[-1] == t else 0.0))
        if hasattr(policy, "observe"):
            policy.observe(t, world, n_cart, n_res, float(sc.queries[t]))
        res.compute += c
        res.quality += l
        seen += float(sc.queries[t])
    res.total = res.compute + res.quality + res.updates
    return res


def schedule_policy(times: set[int]) -> Policy:
    return lambda s, w, sc: s.t in times


def never() -> Policy:
    return lambda s, w, sc: False


def every_k(k: int) -> Policy:
    if k < 1:
        raise ValueError("k must be >= 1")
    return lambda s, w, sc: s.t > 0 and s.t % k == 0


def threshold_n(n_thr: int) -> Policy:
    return lambda s, w, sc: s.n_res >= n_thr


class InequalityPolicy:
    """The controller's online rule (:class:`~stmltm_nb.decision.online.OnlineRule`) in the simulator: one tick
    is one step, the rule observes each step's queries and the advantage A of the state they were served in,
    and decides at the start of the next step with A(n_res) and c_upd(n_res) of the world. Horizon-free: it
    never reads the stream's length or future arrivals."""

    def __init__(self, beta: float = 1.0, eta: float = 0.0, m_floor: int = 1, ema: float = 0.1,
                 mode: str = "renewal"):
        self.beta, self.eta, self.m_floor, self.ema, self.mode = beta, eta, m_floor, ema, mode
        self.reset()

    @classmethod
    def from_config(cls, cfg: Any = None) -> InequalityPolicy:
        """The rule as the controller ships it: β, η, m_floor and the rate EMA of ``cfg`` (a
        :class:`~stmltm_nb.decision.controller_config.ControllerConfig`; its defaults when None)."""
        from stmltm_nb.decision.controller_config import ControllerConfig

        cfg = cfg or ControllerConfig()
        return cls(beta=cfg.beta, eta=cfg.eta, m_floor=cfg.m_floor, ema=cfg.ema)

    def reset(self) -> None:
        self.rule = OnlineRule(beta=self.beta, eta=self.eta, m_floor=self.m_floor, ema=self.ema, mode=self.mode)

    def observe(self, t: int, world: World, n_cart: int, n_res: int, queries: float) -> None:
        """Called by the simulator after each step with the state the queries were served in."""
        self.rule.observe(world.advantage(n_cart, n_res), ticks=1.0, queries=queries)

    def __call__(self, s: State, world: World, sc: ScenarioView) -> bool:
        d = self.rule.evaluate(s.n_res, world.advantage(s.n_cart, s.n_res), world.c_upd(s.n_res))
        if d.go:  # a simulated consolidation always succeeds
            self.rule.consolidated()
        return d.go


class RulePolicy:
    """One rule of the policy table (:class:`~stmltm_nb.decision.online.RuleSpec`, or its id) in the simulator: one
    tick is one step; the rule observes each step's queries and the advantage A of the state they were served in,
    and decides at the start of the next step with A(n_res) and c_upd(n_res) of the world. ``seed`` seeds a
    randomised rule. Horizon-free: it never reads the stream's length or future arrivals."""

    def __init__(self, spec: RuleSpec | str, seed: int | None = None):
        self.spec = rule_spec(spec) if isinstance(spec, str) else spec
        self.seed = seed
        self.reset()

    @property
    def id(self) -> str:
        return self.spec.id

    def reset(self) -> None:
        self.rule = self.spec.rule(seed=self.seed)

    def observe(self, t: int, world: World, n_cart: int, n_res: int, queries: float) -> None:
        self.rule.observe(world.advantage(n_cart, n_res), ticks=1.0, queries=queries)

    def __call__(self, s: State, world: World, sc: ScenarioView) -> bool:
        d = self.rule.evaluate(s.n_res, world.advantage(s.n_cart, s.n_res), world.c_upd(s.n_res))
        if d.go:
            self.rule.consolidated()
        return d.go


def _segments(world: World, sc: Scenario) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised per-step costs: ``G[i, t]`` = cost of step t (queries × per-query cost) when the last
    consolidation was at the start of step ``i`` (row 0: none yet), ``P[i, e]`` = items a consolidation at the
    start of e trains on, and the floor f(N_t, 0) per step. Entries with t < i are 0."""
    T = sc.steps
    items, contra = _cums(sc)
    n_max = int(items[-1]) + 1
    q_tab = np.array([world.recall(n) for n in range(n_max)])
    cost_tab = np.array([world.cost(n) for n in range(n_max)])
    t = np.arange(T)
    starts = np.arange(T)  # row i: consolidation at start of step i (i >= 1); row 0: none yet
    n_res = items[t + 1][None, :] - items[starts][:, None]
    n_cart = np.maximum(0, items[starts][:, None] - contra[t + 1][None, :])
    n_res[0] = items[t + 1] - contra[t + 1]
    n_cart[0] = 0
    valid = t[None, :] >= starts[:, None]
    n_res = np.where(valid, n_res, 0)
    n_cart = np.where(valid, n_cart, 0)
    total = n_cart + n_res
    compute = np.where(n_res > 0, cost_tab[n_res], 0.0) + np.where(n_cart > 0, world.r_cart, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        q_bar = (n_cart * world.q_cart + n_res * q_tab[n_res]) / total
    loss = np.where(total > 0, world.lam * world.Delta * (1.0 - q_bar), 0.0)
    G = np.where(valid, (compute + loss) * sc.queries[None, :], 0.0)
    e = np.arange(T)
    P = np.where(e[None, :] > starts[:, None], items[e][None, :] - items[starts][:, None], 0)
    P[0] = items[e] - contra[e]
    live = items[t + 1] - contra[t + 1]
    floor = np.array([world.per_query(n, 0)[0] + world.per_query(n, 0)[1] for n in live]) * sc.queries
    return G, P, floor


def oracle_prefix_totals(world: World, sc: Scenario) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hindsight optimum of every prefix, by a forward dynamic program over consolidation steps (O(T²)).

    Returns ``(opt, last, floor)``: ``opt[T'-1]`` the least total cost (s) of steps 0..T'−1, ``last[T'-1]`` the
    step of that schedule's last consolidation (−1: none), and ``floor[T'-1]`` the cumulative cost if every item
    were in the cartridge the moment it arrived (what every schedule pays whatever it does: the rest is rent and
    update costs). Agrees with :func:`oracle` on the full stream (tested)."""
    G, P, floor = _segments(world, sc)
    T = sc.steps
    cum = np.cumsum(G, axis=1)  # cum[i, t]: cost of steps i..t after a consolidation at i (row 0: from step 0)
    c_upd = world.c_upd0 + world.c_upd_item * P.astype(float)
    F = np.full(T, math.inf)  # F[i]: least cost of steps 0..i−1 with a consolidation at the start of i (i >= 1)
    F[0] = 0.0  # row 0 = the start, nothing consolidated
    for e in range(1, T):
        cand = F[:e] + cum[:e, e - 1] + np.where(P[:e, e] > 0, c_upd[:e, e], math.inf)
        F[e] = cand.min()
    opt, last = np.empty(T), np.empty(T, dtype=int)
    for t in range(T):
        cand = F[: t + 1] + cum[: t + 1, t]
        k = int(np.argmin(cand))
        opt[t], last[t] = cand[k], (k if k > 0 else -1)
    return opt, last, np.cumsum(floor)


def oracle(world: World, sc: Scenario) -> SimResult:
    """Optimal consolidation schedule in hindsight (dynamic programming over consolidation steps)."""
    T = sc.steps
    items, contra = _cums(sc)
    # best[s]: least cost of steps s..T-1 given a consolidation at the start of s; start: index T+1 = "none yet"
    best = np.full(T + 2, math.inf)
    choice = np.full(T + 2, -1)
    best[T] = 0.0
    for s in [*range(T - 1, 0, -1), None]:
        start = 0 if s is None else s
        cum = np.zeros(T - start + 1)
        acc = 0.0
        for j, t in enumerate(range(start, T)):
            n_cart, n_res = _state(items, contra, s, t)
            c, l = _step(world, n_cart, n_res, float(sc.queries[t]))
            acc += c + l
            cum[j + 1] = acc
        cands = [cum[T - start]]  # never consolidate again
        for e in range(start + 1, T):
            pending = _pending(items, contra, s, e)
            cands.append(cum[e - start] + world.c_upd(pending) + best[e] if pending > 0 else math.inf)
        k = int(np.argmin(cands))
        idx = T + 1 if s is None else s
        best[idx] = cands[k]
        choice[idx] = -1 if k == 0 else start + k
    times, s = [], T + 1
    while choice[s] != -1:
        s = int(choice[s])
        times.append(s)
    res = simulate(world, sc, schedule_policy(set(times)), "hindsight oracle")
    if not math.isclose(res.total, best[T + 1], rel_tol=1e-9, abs_tol=1e-9):
        raise AssertionError(f"oracle DP ({best[T + 1]}) and simulation ({res.total}) disagree")
    return res


def compare(world: World, sc: Scenario, k_grid: range | None = None, n_thr: int = 32,
            policy: InequalityPolicy | None = None) -> list[SimResult]:
    """never, the best every-k (chosen in hindsight over ``k_grid``), threshold on n, the inequality (by default
    with the controller's shipped knobs, :meth:`InequalityPolicy.from_config`), oracle."""
    out = [simulate(world, sc, never(), "never")]
    ks = k_grid or range(1, sc.steps + 1)
    best_k = min((simulate(world, sc, every_k(k), f"every-{k}") for k in ks), key=lambda r: r.total)
    best_k.policy = f"best every-k (k={best_k.policy.split('-')[1]})"
    out.append(best_k)
    out.append(simulate(world, sc, threshold_n(n_thr), f"threshold n≥{n_thr}"))
    pol = policy or InequalityPolicy.from_config()  # the controller's shipped knobs (η, m_floor, β, EMA)
    pol.reset()
    out.append(simulate(world, sc, pol, "inequality (this rule)"))
    out.append(oracle(world, sc))
    return out


def world_from_curves(curves: dict, lam: float = DEFAULTS.lam, regime: str = "cached") -> World:
    """A World from ``stmltm measure`` output (through :func:`~stmltm_nb.decision.curves.priors`): c_ctx(n)
    slope of the chosen regime, the best q_ctx family, q_cart and r_cart as measured, and c_upd split into a
    fixed part (student training) and a per-item part (teacher targets and questions per consolidated item).
    λ (s per error) is a choice (default: the shipped one, ``DEFAULTS.lam``). KeyError names the priors a partial file lacks."""
    from stmltm_nb.decision.curves import priors

    p = priors(curves, regime).require("cost", "recall", "q_cart", "r_cart", "c_upd_fixed", "c_upd_per_item")
    return World(cost=p.cost, recall=p.recall, q_cart=p.q_cart, r_cart=p.r_cart, c_upd0=p.c_upd_fixed,
                 c_upd_item=p.c_upd_per_item, lam=lam)


def policy_table(world: World, scs: list[Scenario] | None = None, **kw) -> list[dict]:
    """Rows (scenario, policy, total and parts in seconds, consolidations, regret % vs the oracle)."""
    rows = []
    for sc in scs or scenarios():
        res = compare(world, sc, **kw)
        best = res[-1].total
        for r in res:
            kind = r.policy.split(" (")[0] if r.policy.startswith("best every-k") else r.policy
            rows.append({"scenario": sc.name, "policy": r.policy, "policy_kind": kind, "total": r.total,
                         "compute": r.compute, "quality": r.quality, "updates": r.updates,
                         "consolidations": len(r.consolidations), "regret_pct": 100 * (r.total / best - 1)})
    return rows
