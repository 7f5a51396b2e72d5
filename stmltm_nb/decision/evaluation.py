"""The rules of :data:`~stmltm_nb.decision.online.RULES` judged over many seeded streams (issue #28). Torch-free.

- :func:`draw_stream`: one seeded stream of a scenario family (steady, bursty, drifting + contradictions,
  query-heavy). Tuning and report sets use disjoint seeds and other lengths (:data:`SETS`).
- :func:`adversarial_stream`: a stream built against a deterministic rule: the queries stop right after its
  consolidation ("queries stop"), or a burst of queries lands in the step before it consolidates and the queries
  pause after it ("bursts"). A randomised rule faces the streams built against break-even (an oblivious adversary).
- :func:`judge`: per stream, each rule's total-cost ratio against the hindsight oracle, its excess ratio (rent and
  updates, the floor every schedule pays removed) and its derived bound (:func:`~stmltm_nb.decision.bounds.
  stream_bound`); a randomised rule's ratio is its mean over its own seeds.
- :func:`evaluate`: the whole benchmark (``benchmarks/policies.py`` writes it to
  ``benchmarks/results/policy_regret.json``): every-k with k tuned on the tuning streams, mean / 90th percentile /
  worst per scenario and rule, the shipped rule chosen on the tuning streams, and the ratio-vs-bound growth curves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stmltm_nb.decision.bounds import check_conditions, plain_bound, stream_bound, textbook_bound
from stmltm_nb.decision.online import RULES, RuleSpec
from stmltm_nb.decision.policies import (
    RulePolicy,
    Scenario,
    SimResult,
    World,
    every_k,
    oracle_prefix_totals,
    simulate,
)

KINDS = ("steady", "bursty", "drifting+contradictions", "query-heavy")
ADVERSARIAL = ("adversarial: queries stop", "adversarial: bursts")
SETS = {"tune": {"steps": 400, "seed0": 0}, "report": {"steps": 500, "seed0": 10_000}}
K_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def draw_stream(kind: str, steps: int, seed: int) -> Scenario:
    """One seeded stream of ``kind`` (:data:`KINDS`), ``steps`` long; queries are Poisson counts per step."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not (isinstance(steps, (int, np.integer)) and steps >= 1):
        raise ValueError(f"steps (scenario length) must be an integer >= 1, got {steps!r}")
    rng = np.random.default_rng(seed)
    zero = np.zeros(steps, int)
    if kind == "steady":
        return Scenario(kind, rng.binomial(1, 0.5, steps), rng.poisson(2.0, steps).astype(float), zero)
    if kind == "bursty":
        items = np.where(rng.random(steps) < 1 / 50, rng.poisson(20, steps), 0)
        high, t = np.zeros(steps, bool), 0
        state = bool(rng.integers(2))
        while t < steps:
            span = int(rng.geometric(1 / 25))
            high[t:t + span] = state
            state, t = not state, t + span
        return Scenario(kind, items, rng.poisson(np.where(high, 4.0, 0.5)).astype(float), zero)
    if kind == "drifting+contradictions":
        items = rng.binomial(1, np.linspace(1.0, 0.1, steps))
        contra = np.where(np.arange(steps) > steps // 4, rng.binomial(items, 0.15), 0)
        return Scenario(kind, items, rng.poisson(np.linspace(0.5, 6.0, steps)).astype(float), contra)
    return Scenario(kind, rng.binomial(1, 0.2, steps), rng.poisson(10.0, steps).astype(float), zero)


def _deterministic_target(spec: RuleSpec) -> RuleSpec:
    return RULES["break-even"] if spec.randomised else spec


def adversarial_stream(kind: str, spec: RuleSpec, world: World, steps: int, seed: int, burst_rent: float = 1.5,
                       pause: int = 40, period: int = 60) -> Scenario:
    """A stream built against the (deterministic) rule ``spec`` on ``world``: items arrive about every other step.

    - ``"adversarial: queries stop"``: Poisson(2) queries until the rule's first consolidation, none after it: the
      rule paid the update and nothing uses it.
    - ``"adversarial: bursts"``: Poisson(1) queries; every ``period`` steps, in a step whose start the rule let pass
      without consolidating, a burst whose rent on the rule's residual is ``burst_rent``·c_upd0 (the rule sees it only
      after paying it; it then consolidates), followed by ``pause`` steps without queries (the update helps little).

    Only steps after a decision are changed, so the rule's decisions up to it stand (it is online)."""
    if kind not in ADVERSARIAL:
        raise ValueError(f"kind must be one of {ADVERSARIAL}, got {kind!r}")
    target = _deterministic_target(spec)
    rng = np.random.default_rng(seed)
    items = rng.binomial(1, 0.5, steps)
    queries = rng.poisson(2.0 if kind == ADVERSARIAL[0] else 1.0, steps).astype(float)
    zero = np.zeros(steps, int)
    sc = Scenario(kind, items, queries, zero)
    if kind == ADVERSARIAL[0]:
        first = simulate(world, sc, RulePolicy(target)).consolidations
        if first:
            queries[first[0]:] = 0.0
        return Scenario(kind, items, queries, zero)
    b = period
    while b < steps:
        queries[b] = max(queries[b], 1.0)
        res = simulate(world, Scenario(kind, items, queries, zero), RulePolicy(target))
        if b in res.consolidations or res.rents[b] <= 0:  # it consolidated at b's start: nothing to catch
            b += 1
            continue
        a_b = res.rents[b] / queries[b]  # the rule decided at b's start to wait: its residual serves the burst
        queries[b] = max(queries[b], math.ceil(burst_rent * world.c_upd0 / a_b))
        queries[b + 1:b + 1 + pause] = 0.0
        b += 1 + pause + period
    return Scenario(kind, items, queries, zero)


def _run(world: World, sc: Scenario, policy: Callable) -> SimResult:
    if hasattr(policy, "reset"):
        policy.reset()
    return simulate(world, sc, policy)


def judge(world: World, sc: Scenario, specs: Sequence[RuleSpec], random_seeds: int = 20,
          ks: Sequence[int] = (), prefixes: Sequence[int] = ()) -> dict[str, Any]:
    """Each rule on one stream: ``ratio`` (total cost / oracle's), ``x_ratio`` (rent + updates / oracle's),
    ``bound`` (the derived bound on both) and, at each of ``prefixes`` (stream lengths), the same three for the
    stream cut there. Randomised rules: means over ``random_seeds`` of their own seeds. ``ks``: every-k ratios."""
    opt, last, floor = oracle_prefix_totals(world, sc)
    items = np.concatenate([[0], np.cumsum(sc.items)])
    T = sc.steps
    cuts = [p for p in prefixes if 1 <= p <= T] or [T]
    if T not in cuts:
        cuts.append(T)

    def tail(p: int, run: SimResult) -> int:
        """Items of the rule's cycle that holds the oracle's last consolidation L, arrived at or after L (the
        oracle never pays their per-item update cost); 0 when the oracle never consolidates (no cycle of the rule
        then sees the oracle consolidate)."""
        L = int(last[p - 1])
        if L < 0:
            return 0
        end = min([a for a in run.consolidations if a > L] + [p])
        return int(items[end] - items[L])

    out: dict[str, Any] = {"oracle": float(opt[-1]), "floor": float(floor[-1]), "rules": {}, "every_k": {}}
    for spec in specs:
        runs = [_run(world, sc, RulePolicy(spec, seed=s)) for s in (range(random_seeds) if spec.randomised else [None])]
        per_cut = {}
        for p in cuts:
            o, x_o = float(opt[p - 1]), float(opt[p - 1] - floor[p - 1])
            totals = [sum(r.costs[:p]) for r in runs]
            bounds = [stream_bound(spec, world, r.rents[:p], tail(p, r), x_o).ratio for r in runs]
            x_on = [t - float(floor[p - 1]) for t in totals]
            per_cut[p] = {"ratio": _ratio(float(np.mean(totals)), o), "x_ratio": _ratio(float(np.mean(x_on)), x_o),
                          "bound": float(np.mean(bounds))}
        out["rules"][spec.id] = {**per_cut[T], "consolidations": float(np.mean([len(r.consolidations) for r in runs])),
                                 "growth": {p: v for p, v in per_cut.items() if p in prefixes}}
    for k in ks:
        out["every_k"][k] = _run(world, sc, every_k(k)).total / opt[-1]
    return out


def _ratio(on: float, opt: float) -> float:
    """on / opt; 1 when both are 0 (nothing to pay), ∞ when only the oracle pays nothing."""
    if opt > 1e-12:
        return on / opt
    return 1.0 if on <= 1e-9 else math.inf


def _stats(v: Sequence[float]) -> dict[str, float]:
    a = np.asarray(v, float)
    return {"mean": float(a.mean()), "p90": float(np.quantile(a, 0.9)), "worst": float(a.max())}


def evaluate(world: World, n_streams: int = 50, random_seeds: int = 20, specs: Sequence[RuleSpec] | None = None,
             sets: dict | None = None, k_grid: Sequence[int] = K_GRID, growth_step: int = 50,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The benchmark of issue #28 on ``world``: ``n_streams`` seeded streams per scenario and set (tuning seeds
    ``seed0 + i`` of the tuning set, report seeds of the report set: disjoint), the adversarial streams on the report
    set, every-k with k tuned per scenario on the tuning streams, and the shipped rule chosen on the tuning streams.
    Ratios are total cost over the oracle's; regret = 100·(ratio − 1) %."""
    specs = list(specs or RULES.values())
    sets = sets or SETS
    if n_streams < 1 or random_seeds < 1:
        raise ValueError(f"n_streams and random_seeds must be >= 1, got {n_streams}, {random_seeds}")
    say = progress or (lambda _m: None)
    res: dict[str, Any] = {
        "world": {"c_upd0": world.c_upd0, "c_upd_item": world.c_upd_item, "lam": world.lam},
        "conditions": check_conditions(world), "n_streams": n_streams, "random_seeds": random_seeds,
        "sets": {k: {"steps": v["steps"], "seeds": [v["seed0"], v["seed0"] + n_streams - 1]} for k, v in sets.items()},
        "rules": {s.id: {"label": s.label, "mode": s.mode, "trust": s.trust if s.mode == "forecast" else None,
                         "randomised": s.randomised, "plain_bound": _finite(plain_bound(s)),
                         "textbook_bound": _finite(textbook_bound(s)),
                         "consistent": 1 + s.trust if s.mode == "forecast" else None} for s in specs},
        "every_k": {}, "rows": [], "growth": {},
    }
    per: dict[tuple[str, str], list[dict]] = {}
    for set_name, cfg in sets.items():
        for kind in KINDS:
            say(f"{set_name} {kind}")
            ks = k_grid if set_name == "tune" else [res["every_k"][kind]]
            per[set_name, kind] = [judge(world, draw_stream(kind, cfg["steps"], cfg["seed0"] + i), specs, random_seeds,
                                         ks) for i in range(n_streams)]
            if set_name == "tune":
                mean_k = {k: np.mean([j["every_k"][k] for j in per[set_name, kind]]) for k in k_grid}
                res["every_k"][kind] = int(min(mean_k, key=mean_k.get))
    rep = sets["report"]
    prefixes = list(range(growth_step, rep["steps"] + 1, growth_step))
    for kind in ADVERSARIAL:
        say(f"report {kind}")
        for spec in specs:  # each deterministic rule faces streams built against it
            streams = [adversarial_stream(kind, spec, world, rep["steps"], rep["seed0"] + i) for i in range(n_streams)]
            js = [judge(world, sc, [spec], random_seeds, [res["every_k"]["steady"]], prefixes) for sc in streams]
            per["report", kind + "|" + spec.id] = js
    for (set_name, key), js in per.items():
        kind, _, only = key.partition("|")
        for spec in specs:
            if only and only != spec.id:
                continue
            r = [j["rules"][spec.id] for j in js]
            res["rows"].append(_row(set_name, kind, spec.id, r))
            if only:
                res["growth"].setdefault(kind, {})[spec.id] = _growth(r, prefixes)
        k = res["every_k"]["steady" if only else kind]
        if not only or only == specs[0].id:
            ratios = [j["every_k"][k] for j in js]
            res["rows"].append({"set": set_name, "scenario": kind, "rule": "every-k", "k": k,
                                **{f"{s}_regret": 100 * (v - 1) for s, v in _stats(ratios).items()},
                                **{f"{s}_ratio": v for s, v in _stats(ratios).items()}, "bound_ok": None})
    res["shipped"] = choose_shipped(res)
    res["verdict"] = verdict(res, res["shipped"])
    return res


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _row(set_name: str, kind: str, rule_id: str, r: list[dict]) -> dict[str, Any]:
    ratio, x_ratio = _stats([v["ratio"] for v in r]), _stats([v["x_ratio"] for v in r])
    bounds = [v["bound"] for v in r]
    return {"set": set_name, "scenario": kind, "rule": rule_id, "k": None,
            **{f"{s}_regret": 100 * (v - 1) for s, v in ratio.items()}, **{f"{s}_ratio": v for s, v in ratio.items()},
            "worst_x_ratio": x_ratio["worst"], "mean_x_ratio": x_ratio["mean"],
            "bound_min": _finite(min(bounds)), "bound_max": _finite(max(bounds)),
            "bound_ok": all(v["ratio"] <= v["bound"] + 1e-9 and v["x_ratio"] <= v["bound"] + 1e-9 for v in r)
            if all(math.isfinite(b) for b in bounds) else None,
            "worst_below_min_bound": ratio["worst"] <= min(bounds)}


def _growth(r: list[dict], prefixes: list[int]) -> dict[str, list]:
    return {"steps": prefixes,
            "worst_ratio": [max(v["growth"][p]["ratio"] for v in r) for p in prefixes],
            "worst_x_ratio": [max(v["growth"][p]["x_ratio"] for v in r) for p in prefixes],
            "bound_min": [_finite(min(v["growth"][p]["bound"] for v in r)) for p in prefixes]}


def _mean_regret(res: dict, set_name: str, rule: str, kind: str) -> float:
    return next(r["mean_regret"] for r in res["rows"] if (r["set"], r["rule"], r["scenario"]) == (set_name, rule, kind))


def choose_shipped(res: dict) -> str:
    """The rule with a bound whose mean regret, averaged over the tuning scenarios, is lowest."""
    bounded = [rid for rid, r in res["rules"].items() if r["plain_bound"] is not None]
    return min(bounded, key=lambda rid: np.mean([_mean_regret(res, "tune", rid, k) for k in KINDS]))


def verdict(res: dict, rule: str) -> dict[str, Any]:
    """Report scenarios where ``rule``'s mean regret is below tuned every-k, and whether every rule stays at or
    below its bound on every report stream (adversarial included)."""
    below = [k for k in KINDS if _mean_regret(res, "report", rule, k) < _mean_regret(res, "report", "every-k", k)]
    rows = [r for r in res["rows"] if r["set"] == "report" and r["rule"] != "every-k"]
    return {"rule": rule, "below_every_k": below, "n_below_every_k": len(below),
            "bounds_hold": all(r["bound_ok"] for r in rows if r["bound_ok"] is not None),
            "worst_below_min_bound": all(r["worst_below_min_bound"] for r in rows if r["bound_min"] is not None)}
