import itertools

import numpy as np
import pytest

from stmltm_nb.decision.online import OnlineRule
from stmltm_nb.decision.policies import (
    InequalityPolicy,
    LookaheadError,
    Scenario,
    World,
    _cums,
    _pending,
    _state,
    compare,
    every_k,
    never,
    oracle,
    scenarios,
    schedule_policy,
    simulate,
    threshold_n,
)
from stmltm_nb.decision.switching import CostModel, RecallModel

WORLD = World(cost=CostModel(0.0, 0.004), recall=RecallModel("hyperbolic", q0=1.0, n50=12), q_cart=0.9,
              r_cart=0.05, c_upd0=300.0, c_upd_item=2.0, lam=5.0)


def test_oracle_equals_brute_force_on_a_small_stream():
    rng = np.random.default_rng(0)
    sc = Scenario("small", rng.integers(0, 3, 10), rng.uniform(0, 40, 10), np.zeros(10, int))
    best = min(simulate(WORLD, sc, schedule_policy(set(c))).total
               for r in range(0, 11) for c in itertools.combinations(range(1, 10), r))
    assert oracle(WORLD, sc).total == pytest.approx(best)


@pytest.mark.parametrize("sc", scenarios(steps=120), ids=lambda s: s.name)
def test_no_policy_beats_the_oracle(sc):
    res = compare(WORLD, sc, k_grid=range(1, 121, 7))
    o = res[-1]
    assert o.policy == "hindsight oracle"
    assert all(r.total >= o.total - 1e-6 for r in res)
    assert res[0].updates == 0 and res[0].consolidations == []


def test_costs_add_up_and_policies_behave():
    sc = scenarios(steps=100)[0]
    r = simulate(WORLD, sc, every_k(10))
    assert r.total == pytest.approx(r.compute + r.quality + r.updates)
    assert r.consolidations == list(range(10, 100, 10))
    t = simulate(WORLD, sc, threshold_n(5))
    assert all(b - a >= 9 for a, b in zip(t.consolidations, t.consolidations[1:]))
    assert simulate(WORLD, sc, never()).consolidations == []
    with pytest.raises(ValueError):
        every_k(0)


def test_inequality_policy_never_looks_ahead():
    # two streams identical up to step 60 get identical decisions up to step 60, whatever follows or how long
    a = scenarios(steps=120)[3]  # query-heavy: consolidates before step 60 and after it
    b = Scenario("b", a.items.copy(), a.queries.copy(), a.contradictions.copy())
    b.queries[60:] = 50.0
    short = Scenario("short", a.items[:61], a.queries[:61], a.contradictions[:61])
    ra, rb, rs = (simulate(WORLD, sc, InequalityPolicy()) for sc in (a, b, short))
    early = [t for t in ra.consolidations if t <= 60]
    assert early and early == [t for t in rb.consolidations if t <= 60] == rs.consolidations
    assert rb.consolidations != ra.consolidations  # the busier tail does change later decisions


def _peeking(what):
    def policy(s, w, sc):
        if what == "steps":
            return sc.steps > 0
        if what == "len":
            return len(sc) > 0
        return sc.queries[s.t + 1] > 0
    return policy


@pytest.mark.parametrize("what", ["steps", "len", "future"])
def test_policies_see_only_the_past_of_the_stream(what):
    sc = scenarios(steps=60)[1]
    with pytest.raises(LookaheadError, match="only the hindsight oracle"):
        simulate(WORLD, sc, _peeking(what))
    seen = []

    def past_only(s, w, view):
        items, queries, _ = view.past()
        seen.append((s.t, len(items), float(queries.sum())))
        return False

    simulate(WORLD, sc, past_only)
    assert all(t == n for t, n, _ in seen) and seen[-1][2] == pytest.approx(sc.queries[: seen[-1][0]].sum())
    # every policy of the comparison runs on the guarded view (the oracle alone reads the whole scenario)
    res = compare(WORLD, sc, k_grid=range(1, 61, 9))
    assert [r.policy for r in res][-1] == "hindsight oracle" and len(res) == 5


def test_the_simulated_rule_is_the_online_rule():
    """InequalityPolicy only feeds OnlineRule: replaying the same observations into a bare rule gives the same
    consolidation steps."""
    sc = scenarios(steps=200)[3]
    res = simulate(WORLD, sc, InequalityPolicy())
    rule, times, items, contra = OnlineRule(), [], *_cums(sc)
    last = None
    for t in range(sc.steps):
        pending = _pending(items, contra, last, t)
        n_cart = _state(items, contra, last, t - 1)[0] if t > 0 else 0
        if pending > 0 and rule.evaluate(pending, WORLD.advantage(n_cart, pending), WORLD.c_upd(pending)).go:
            rule.consolidated()
            times.append(t)
            last = t
        rule.observe(WORLD.advantage(*_state(items, contra, last, t)), queries=float(sc.queries[t]))
    assert times == res.consolidations and len(times) >= 2


def test_bad_scenarios_raise():
    with pytest.raises(ValueError):
        Scenario("x", [1, 2], [1.0], [0, 0])
    with pytest.raises(ValueError):
        Scenario("x", [1], [-1.0], [0])
    with pytest.raises(ValueError):
        Scenario("x", [1], [1.0], [2])


def test_the_simulated_rule_uses_the_controllers_shipped_knobs():
    from stmltm_nb.decision.controller_config import ControllerConfig
    from stmltm_nb.decision.policies import InequalityPolicy

    cfg = ControllerConfig()
    pol = InequalityPolicy.from_config()
    assert (pol.rule.beta, pol.rule.eta, pol.rule.m_floor, pol.rule.ema) == (cfg.beta, cfg.eta, cfg.m_floor, cfg.ema)
