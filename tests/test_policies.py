import itertools

import numpy as np
import pytest

from stmltm_nb.decision.policies import (
    InequalityPolicy,
    Scenario,
    World,
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
    # two streams identical up to step 60 must get identical decisions up to step 60
    a = scenarios(steps=120)[0]
    b = Scenario("b", a.items.copy(), a.queries.copy(), a.contradictions.copy())
    b.queries[60:] = 50.0
    ra, rb = simulate(WORLD, a, InequalityPolicy()), simulate(WORLD, b, InequalityPolicy(horizon=120))
    ra2 = simulate(WORLD, a, InequalityPolicy(horizon=120))
    assert [t for t in ra2.consolidations if t <= 60] == [t for t in rb.consolidations if t <= 60]
    assert ra.total == pytest.approx(ra2.total)


def test_bad_scenarios_raise():
    with pytest.raises(ValueError):
        Scenario("x", [1, 2], [1.0], [0, 0])
    with pytest.raises(ValueError):
        Scenario("x", [1], [-1.0], [0])
    with pytest.raises(ValueError):
        Scenario("x", [1], [1.0], [2])
