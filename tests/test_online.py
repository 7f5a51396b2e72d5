import math

import pytest

from stmltm_nb.decision.online import OnlineRule


def test_rate_uses_the_prior_until_a_query_is_observed_then_an_ema():
    r = OnlineRule(prior_rate=4.0, ema=0.5)
    r.observe(1.0, ticks=2.0)  # no traffic observed: the rent uses the prior, 4 q/tick × 2 ticks × 1 s
    assert r.rate == 4.0 and r.rent.rent == pytest.approx(8.0) and r.q_hat() == pytest.approx(8.0)
    r.observe(1.0, ticks=1.0, queries=0.0)  # zero queries before the first one: still the prior
    assert r.rate == 4.0
    r.observe(0.5, ticks=2.0, queries=10.0)
    assert r.rate == pytest.approx(5.0) and r.rent.rent == pytest.approx(13.0)
    r.observe(0.0, ticks=1.0, queries=1.0)  # one tick at weight 0.5
    assert r.rate == pytest.approx(3.0)
    r.observe(-3.0, ticks=1.0, queries=1.0)  # negative advantage adds no rent
    assert r.rent.rent == pytest.approx(13.0) and r.elapsed == 7.0


def test_renewal_and_ski_triggers_and_their_terms():
    r = OnlineRule(prior_rate=10.0, eta=0.0)
    for _ in range(3):
        r.observe(2.0, ticks=1.0)  # rent 60 s, Q̂ = 30 queries
    d = r.evaluate(n=3, advantage_s=4.0, c_upd_s=50.0)  # Q̂·A = 120 ≥ 50 + 60: renewal
    assert d.go and d.trigger == "renewal" and d.terms["renewal_rhs"] == pytest.approx(110.0)
    d = r.evaluate(n=3, advantage_s=2.0, c_upd_s=55.0)  # Q̂·A = 60 < 115, but R = 60 ≥ 55: ski rental
    assert d.go and d.trigger == "ski-rental"
    d = r.evaluate(n=3, advantage_s=2.0, c_upd_s=100.0)
    assert not d.go and d.trigger is None and d.blocked_by == ["inequality"]
    ski = OnlineRule(prior_rate=10.0, mode="ski", rent=r.rent, elapsed=r.elapsed)
    assert ski.evaluate(n=3, advantage_s=4.0, c_upd_s=70.0).trigger is None  # renewal off in ski mode
    assert not r.evaluate(n=0, advantage_s=4.0, c_upd_s=50.0).go  # below the m floor
    with pytest.raises(ValueError):
        OnlineRule(mode="oracle")


def test_backoff_holds_until_n_grows_and_a_commit_clears_it():
    r = OnlineRule(prior_rate=10.0)
    r.observe(5.0, ticks=4.0)
    assert r.back_off(8, 1.5) == 12 and r.back_off(8, 1.0) == 9  # always at least one more item
    d = r.evaluate(n=8, advantage_s=5.0, c_upd_s=1.0)
    assert not d.go and d.cooling and d.trigger and d.blocked_by == ["backoff after rollback"]
    r.back_off(8, 2.0)
    assert not r.evaluate(n=15, advantage_s=5.0, c_upd_s=1.0).go and r.evaluate(16, 5.0, 1.0).go
    r.consolidated()
    assert r.retry_at_n == 0 and r.rent.rent == 0 and r.elapsed == 0 and r.q_hat() == 0
    with pytest.raises(ValueError):
        r.back_off(8, 0.5)
    with pytest.raises(ValueError):
        r.observe(1.0, ticks=math.inf)


def test_no_rate_no_renewal():
    r = OnlineRule()  # the simulator's rule: no prior, nothing observed yet
    assert r.rate is None and r.q_hat() == 0 and not r.evaluate(5, 10.0, 1.0).go
