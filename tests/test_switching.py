import math

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from stmltm_nb.decision import switching as sw
from stmltm_nb.decision.switching import CostModel, RecallModel, SwitchingInputError, SwitchInputs, decide
from stmltm_nb.metrics.signal import m_star

BASE = dict(n=40, Q=500, c_upd=300.0, r_cart=0.05, cost=CostModel(0.02, 0.004), lam=2.0, q_cart=0.9, eta=0.1)


def inputs(**kw):
    d = dict(BASE)
    d.update(kw)
    return SwitchInputs(**d)


RECALLS = {
    "linear": RecallModel("linear", q0=0.95, rho=0.006),
    "exponential": RecallModel("exponential", q0=0.95, nu=35.0),
    "hyperbolic": RecallModel("hyperbolic", q0=0.95, n50=18.0),
}


@pytest.mark.parametrize("cost, recall", sw.CLOSED_FORMS)
def test_every_closed_form_equals_the_numeric_root(cost, recall):
    cm = CostModel(0.02, 0.004, 2e-5 if cost == "quadratic" else 0.0)
    x = inputs(cost=cm, recall=RECALLS[recall], Q=200.0)
    numeric = sw.break_even_n_numeric(x)
    assert 0 < numeric < 1e6
    subs = {sw.kappa0: cm.kappa0, sw.kappa1: cm.kappa1, sw.kappa2: cm.kappa2, sw.r_cart: x.r_cart, sw.lam: x.lam,
            sw.Delta: x.Delta, sw.eps_d: x.eps_d, sw.q0: x.recall.q0, sw.q_cart: x.q_cart, sw.rho: x.recall.rho,
            sw.nu: x.recall.nu, sw.n50: x.recall.n50, sw.Q: x.Q, sw.c_upd: x.c_upd, sw.eta: x.eta}
    roots = [complex(sp.N(s.subs(subs))) for s in sw.break_even_n_solutions(cost, recall)]
    real = [r.real for r in roots if abs(r.imag) < 1e-9 and r.real > 0]
    assert any(math.isclose(r, numeric, rel_tol=1e-6) for r in real), (real, numeric)


def test_hill_has_no_closed_form_but_a_numeric_root():
    assert sw.break_even_n_solutions("linear", "hill") == []
    x = inputs(recall=RecallModel("hill", q0=0.95, n50=20, k=1.6), Q=200.0)
    nstar = sw.break_even_n_numeric(x)
    assert x.Q * sw.advantage(x, nstar) == pytest.approx((1 + x.eta) * x.c_upd, rel=1e-6)


def test_q_star_and_decision_terms():
    x = inputs(recall=RECALLS["hyperbolic"])
    d = decide(x)
    A = d.terms["A"]
    assert A == pytest.approx(x.cost(x.n) - x.r_cart + x.lam * (x.q_cart - x.recall(x.n)))
    assert d.terms["Q_star"] == pytest.approx((1 + x.eta) * x.c_upd / A)
    assert d.consolidate == (x.Q >= d.terms["Q_star"])


def test_each_gate_blocks_on_its_own():
    ok = inputs(recall=RECALLS["hyperbolic"], m=100, m_star=50, snr=5.0, tau=2.0, g_mdl=1e6, holdout_pass=True)
    assert decide(ok).consolidate and decide(ok).blocked_by == []
    failing = {
        "G1 sample size": dict(m=10),
        "G2 SNR": dict(snr=1.0),
        "G3 MDL": dict(g_mdl=-5.0),
        "G4 quality": dict(q_cart=0.1),
        "G5 hold-out": dict(holdout_pass=False),
    }
    for gate, change in failing.items():
        kw = {**ok.__dict__, **change}
        d = decide(SwitchInputs(**kw))
        expected = [gate] if gate != "G4 quality" else [gate, "inequality"]
        assert not d.consolidate and d.blocked_by[: len(expected)] == expected, (gate, d.blocked_by)
        assert gate in d.explanation


def test_inequality_blocks_when_it_does_not_pay():
    d = decide(inputs(recall=RECALLS["hyperbolic"], Q=1))
    assert d.blocked_by == ["inequality"] and "does not pay" in d.explanation


@pytest.mark.parametrize("field, value", [
    ("n", -1), ("Q", float("nan")), ("c_upd", -5), ("c_upd", float("inf")), ("r_cart", float("nan")),
    ("lam", -1), ("q_cart", 1.5), ("gamma", 2.0), ("tau", 0.0), ("tau", -1), ("eta", -0.1), ("m", -1),
    ("snr", float("nan")), ("n", "many"),
])
def test_bad_inputs_raise_clear_errors(field, value):
    with pytest.raises(SwitchingInputError, match=field.split(".")[-1]):
        decide(inputs(**{field: value}))


def test_bad_model_parameters_raise():
    with pytest.raises(SwitchingInputError):
        decide(inputs(cost=CostModel(-1, 0.1)))
    with pytest.raises(SwitchingInputError):
        decide(inputs(recall=RecallModel("hyperbolic", q0=0.9, n50=0)))
    with pytest.raises(SwitchingInputError):
        decide(inputs(recall=RecallModel("cubic")))


finite = st.floats(0, 1e4, allow_nan=False)
prob = st.floats(0, 1)


@st.composite
def switch_inputs(draw):
    kind = draw(st.sampled_from(["linear", "exponential", "hyperbolic", "hill"]))
    rec = RecallModel(kind, q0=draw(prob), rho=draw(st.floats(0, 0.1)), nu=draw(st.floats(0.1, 1e3)),
                      n50=draw(st.floats(0.1, 1e3)), k=draw(st.floats(0.2, 4)))
    return SwitchInputs(n=draw(st.floats(0, 5000)), Q=draw(finite), c_upd=draw(finite), r_cart=draw(st.floats(0, 10)),
                        cost=CostModel(draw(st.floats(0, 10)), draw(st.floats(0, 1)), draw(st.floats(0, 1e-3))),
                        recall=rec, q_cart=draw(prob), lam=draw(st.floats(0, 100)), eta=draw(st.floats(0, 2)),
                        gamma=draw(st.floats(-1, 1)), tau=draw(st.floats(0.1, 10)))


@settings(max_examples=300, deadline=None)
@given(switch_inputs(), st.floats(1, 100), st.floats(0, 1))
def test_more_queries_or_cheaper_update_never_turns_consolidate_into_wait(x, q_factor, c_factor):
    d = decide(x)
    assert all(math.isfinite(v) or k == "Q_star" for k, v in d.terms.items())
    if d.consolidate:
        more_q = SwitchInputs(**{**x.__dict__, "Q": x.Q * q_factor})
        cheaper = SwitchInputs(**{**x.__dict__, "c_upd": x.c_upd * c_factor})
        assert decide(more_q).consolidate and decide(cheaper).consolidate


@settings(max_examples=200, deadline=None)
@given(switch_inputs())
def test_advantage_is_non_decreasing_in_n(x):
    a = [sw.advantage(x, v) for v in (0, 1, 10, 100, 1000)]
    assert all(b >= a_ - 1e-9 for a_, b in zip(a, a[1:]))


def test_ski_rental_and_eoq_agree_for_linear_growth():
    vals = {sw.kappa1: 0.004, sw.lam: 2.0, sw.Delta: 1.0, sw.rho: 0.006, sw.g: 0.5, sw.c_upd: 3000.0, sw.beta: 1}
    eoq = float(sw.eoq_cycle_expr().subs(vals))
    ski = float(sw.ski_rental_cycle_expr().subs(vals))
    assert ski == pytest.approx(eoq, rel=0.02)
    rent = sw.SkiRental()
    K, gg = 0.004 + 2.0 * 0.006, 0.5
    j = 0
    while not rent.should_consolidate(3000.0):
        rent.observe(K * gg * j)
        j += 1
    assert j == pytest.approx(ski, abs=1.5)
    with pytest.raises(SwitchingInputError):
        rent.observe(float("nan"))


def test_m_star_expression_matches_estimator():
    e = sw.m_star_expr().subs({sw.dl_bits: 5000, sw.delta_: 0.05, sw.eps_: 0.05})
    assert float(e) == pytest.approx(m_star(5000, 0.05, 0.05))
    e2 = sw.m_star_expr(agnostic=True).subs({sw.dl_bits: 5000, sw.delta_: 0.05, sw.eps_: 0.05})
    assert float(e2) == pytest.approx(m_star(5000, 0.05, 0.05, agnostic=True))


def test_numpy_scalars_are_accepted():
    import numpy as np

    d = decide(inputs(n=np.int64(40), Q=np.float64(500.0), recall=RECALLS["hyperbolic"]))
    assert d.terms["A"] == decide(inputs(n=40, Q=500.0, recall=RECALLS["hyperbolic"])).terms["A"]


def test_public_names_stay_importable_from_switching():
    """switching.py was split (sympy expressions in symbolic.py); every public name still comes from here."""
    from stmltm_nb.decision import symbolic

    names = ["CLOSED_FORMS", "COST_KINDS", "RECALL_KINDS", "SYMBOL_TABLE", "advantage_expr", "advantage_fn",
             "break_even_Q_expr", "break_even_n_solutions", "c_ctx_expr", "eoq_cycle_expr", "m_star_expr",
             "q_ctx_expr", "q_ctx_fn", "ski_rental_cycle_expr", "n", "Q", "c_upd", "r_cart", "lam", "Delta", "eps_d",
             "eta", "kappa0", "kappa1", "kappa2", "q0", "q_cart", "rho", "nu", "n50", "k_hill", "g", "beta", "T",
             "dl_bits", "delta_", "eps_", "CostModel", "RecallModel", "SwitchInputs", "SwitchingInputError",
             "validate", "decide", "advantage", "break_even_n_numeric", "SkiRental", "Gate", "Decision"]
    missing = [name for name in names if not hasattr(sw, name)]
    assert not missing
    assert sw.advantage_expr is symbolic.advantage_expr and sw.n is symbolic.n


@pytest.mark.parametrize("module", ["stmltm_nb.decision.symbolic", "stmltm_nb.decision.inputs"])
def test_split_modules_import_no_torch(module):
    import subprocess
    import sys

    code = f"import sys, {module}; bad = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_one_schema_gives_the_same_inputs_from_json_and_flags():
    import argparse

    from stmltm_nb.decision.inputs import FIELDS, add_flags, given_flags, inputs_from

    parser = argparse.ArgumentParser()
    add_flags(parser)
    args = parser.parse_args(["--kappa1", "0.002", "--recall", "hill", "--holdout-pass", "false"])
    from_flags = inputs_from(None, given_flags(args))
    from_json = inputs_from({"cost": {"kappa1": 0.002}, "recall": {"kind": "hill"}, "holdout_pass": False})
    assert from_flags == from_json and from_json.holdout_pass is False
    defaults = {f.path: f.default for f in FIELDS}
    x = inputs_from({})
    assert (x.n, x.Q, x.cost.kappa1, x.recall.n50, x.q_cart) == (
        defaults["n"], defaults["Q"], defaults["cost.kappa1"], defaults["recall.n50"], defaults["q_cart"])


def test_overflowing_products_are_rejected_not_decided():
    with pytest.raises(SwitchingInputError, match="not finite"):
        decide(inputs(n=1e308, Q=1e308, recall=RECALLS["hyperbolic"]))
    with pytest.raises(SwitchingInputError, match="Q must be finite"):
        decide(inputs(Q=math.inf))
