import math
from dataclasses import replace

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from stmltm_nb.decision import switching as sw
from stmltm_nb.decision import symbolic as sym
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


@pytest.mark.parametrize("cost, recall", sym.CLOSED_FORMS)
def test_every_closed_form_equals_the_numeric_root(cost, recall):
    cm = CostModel(0.02, 0.004, 2e-5 if cost == "quadratic" else 0.0)
    x = inputs(cost=cm, recall=RECALLS[recall], Q=200.0)
    numeric = sw.break_even_n_numeric(x)
    assert 0 < numeric < 1e6
    subs = {sym.kappa0: cm.kappa0, sym.kappa1: cm.kappa1, sym.kappa2: cm.kappa2, sym.r_cart: x.r_cart, sym.lam: x.lam,
            sym.Delta: x.Delta, sym.eps_d: x.eps_d, sym.q0: x.recall.q0, sym.q_cart: x.q_cart, sym.rho: x.recall.rho,
            sym.nu: x.recall.nu, sym.n50: x.recall.n50, sym.Q: x.Q, sym.c_upd: x.c_upd, sym.eta: x.eta}
    roots = [complex(sp.N(s.subs(subs))) for s in sym.break_even_n_solutions(cost, recall)]
    real = [r.real for r in roots if abs(r.imag) < 1e-9 and r.real > 0]
    assert any(math.isclose(r, numeric, rel_tol=1e-6) for r in real), (real, numeric)


def test_hill_has_no_closed_form_but_a_numeric_root():
    assert sym.break_even_n_solutions("linear", "hill") == []
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
        "G4 quality": dict(q_cart=0.1),
        "G5 hold-out": dict(holdout_pass=False),
    }
    g3 = decide(SwitchInputs(**{**ok.__dict__, "g_mdl": -5.0}))  # vacuous here: logged, never blocking
    assert g3.consolidate and [(g.passed, g.enforced, g.value) for g in g3.gates if g.name == "G3 MDL"] == [
        (False, False, -5.0)]
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
    """For n >= 1 with one predicted cartridge recall (q̂_cart flat there); A(0) is -r_cart + c_ctx(0) alone."""
    assert sw.advantage(x, 0) == pytest.approx(x.cost(0) - x.r_cart)
    a = [sw.advantage(x, v) for v in (1, 10, 100, 1000)]
    assert all(b >= a_ - 1e-9 for a_, b in zip(a, a[1:]))


def test_ski_rental_and_eoq_agree_for_linear_growth():
    vals = {sym.kappa1: 0.004, sym.lam: 2.0, sym.Delta: 1.0, sym.rho: 0.006, sym.g: 0.5, sym.c_upd: 3000.0, sym.beta: 1}
    eoq = float(sym.eoq_cycle_expr().subs(vals))
    ski = float(sym.ski_rental_cycle_expr().subs(vals))
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
    e = sym.m_star_expr().subs({sym.dl_bits: 5000, sym.delta_: 0.05, sym.eps_: 0.05})
    assert float(e) == pytest.approx(m_star(5000, 0.05, 0.05))
    e2 = sym.m_star_expr(agnostic=True).subs({sym.dl_bits: 5000, sym.delta_: 0.05, sym.eps_: 0.05})
    assert float(e2) == pytest.approx(m_star(5000, 0.05, 0.05, agnostic=True))


def test_numpy_scalars_are_accepted():
    import numpy as np

    d = decide(inputs(n=np.int64(40), Q=np.float64(500.0), recall=RECALLS["hyperbolic"]))
    assert d.terms["A"] == decide(inputs(n=40, Q=500.0, recall=RECALLS["hyperbolic"])).terms["A"]


def test_each_public_name_has_one_home():
    """switching.py was split: the rule's notation and sympy expressions live in symbolic.py (import them from
    there), the rule in switching.py, the gates in gates.py; switching re-exports none of symbolic's names."""
    from stmltm_nb.decision import gates, symbolic

    notation = ["CLOSED_FORMS", "COST_KINDS", "RECALL_KINDS", "SYMBOL_TABLE", "advantage_expr", "advantage_fn",
                "break_even_Q_expr", "break_even_n_solutions", "c_ctx_expr", "eoq_cycle_expr", "m_star_expr",
                "q_ctx_expr", "q_ctx_fn", "ski_rental_cycle_expr", "n", "Q", "c_upd", "r_cart", "lam", "Delta",
                "eps_d", "eta", "kappa0", "kappa1", "kappa2", "q0", "q_cart", "rho", "nu", "n50", "k_hill", "g", "beta",
                "T", "dl_bits", "delta_", "eps_"]
    rule = ["CostModel", "RecallModel", "SwitchInputs", "SwitchingInputError", "validate", "decide", "advantage",
            "break_even_n_numeric", "SkiRental", "Decision", "default_cost", "default_recall"]
    assert [name for name in notation if not hasattr(symbolic, name)] == []
    assert [name for name in rule if not hasattr(sw, name)] == [] and hasattr(gates, "Gate")
    used_by_the_rule = {"RECALL_KINDS", "advantage_fn", "q_ctx_fn"}  # imported by switching.py for its own use
    assert [name for name in notation if hasattr(sw, name) and name not in used_by_the_rule] == []


@pytest.mark.parametrize("module", ["stmltm_nb.decision.symbolic", "stmltm_nb.decision.inputs",
                                    "stmltm_nb.decision.defaults"])
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


def test_decide_waits_at_n_zero_for_every_q_on_the_measured_curves():
    from curves_v2 import v2_curves

    from stmltm_nb.decision.curves import priors

    p = priors(v2_curves())
    for Q in (0.0, 1.0, 1e2, 1e4, 1e8):
        x = SwitchInputs(n=0, Q=Q, c_upd=p.c_upd, r_cart=p.r_cart, cost=p.cost, recall=p.recall, q_cart=p.q_cart,
                         lam=5.0, m=0.0)
        d = decide(x)
        assert not d.consolidate and d.terms["A"] == pytest.approx(-p.r_cart), Q
        assert sw.break_even_n_numeric(x) > 0


def test_q_cart_curve_is_anchored_at_the_empty_stm_and_interpolated():
    x = inputs(recall=RecallModel("hyperbolic", q0=0.9, n50=10.0), q_cart_points=((16, 0.7), (64, 0.5)))
    assert x.q_cart_at(0) == pytest.approx(0.9) and x.q_cart_at(8) == pytest.approx(0.8)
    assert x.q_cart_at(40) == pytest.approx(0.6) and x.q_cart_at(500) == pytest.approx(0.5)
    assert inputs(q_cart=0.7).q_cart_at(3) == pytest.approx(0.7)  # one number: flat from one item on
    with pytest.raises(SwitchingInputError, match="q_cart_points"):
        decide(inputs(q_cart_points=((16, 1.5),)))


def test_gates_log_value_threshold_and_unit():
    from stmltm_nb.decision.gates import bernoulli_kl, m_star_evidence

    x = inputs(recall=RecallModel("hyperbolic", q0=0.9, n50=10.0), n=20, q_cart=0.8, m=20.0, snr=1.3, snr_lo=0.7,
               tau=1.0, dl_bits=7.37e6, g_mdl=-1.0)
    gates = {g.name: g for g in decide(x).gates}
    assert {n: g.unit for n, g in gates.items()} == {
        "G1 sample size": "items", "G2 SNR": "dimensionless (SNR of the mean gradient over the m items)",
        "G3 MDL": "bits", "G4 quality": "error rate", "G5 hold-out": "pass/fail",
        "G6 retention": "nats/token (served memory minus no memory, general text)"}
    q_stm = x.recall(20)  # 0.3: G1's m* is the Chernoff sample size between 0.3 and 0.8
    g1 = gates["G1 sample size"]
    assert g1.threshold == pytest.approx(math.log(20) / bernoulli_kl(q_stm, 0.8)) and g1.passed and g1.value == 20
    assert g1.detail["m_star_textbook"] > 1e7 and g1.detail["textbook_enforced"] is False  # shown, not enforced
    assert m_star_evidence(0.8, 0.7) == math.inf  # a cartridge predicted worse: no sample size suffices
    g2 = gates["G2 SNR"]  # tested on the bootstrap lower bound, the point estimate kept beside it
    assert (g2.value, g2.threshold, g2.passed, g2.detail["snr_m"]) == (0.7, 1.0, False, 1.3)
    assert decide(x).blocked_by[0] == "G2 SNR" and gates["G3 MDL"].enforced is False


def test_break_even_report_caps_and_flags():
    x = inputs(recall=RecallModel("hyperbolic", q0=0.9, n50=10.0), q_cart=0.8, Q=5000.0)
    r = sw.break_even_report(x, n_cap=1000, measured_max=64)
    assert math.isfinite(r["n_star"]) and not r["capped"]
    assert r["outside_measured"] == (r["n_star"] > 64)
    far = sw.break_even_report(replace(x, Q=1e-3), n_cap=1000, measured_max=64)
    assert far["capped"] and far["n_star"] == math.inf


def test_g1_bar_includes_the_quality_margin():
    from stmltm_nb.decision.gates import bernoulli_kl, g1

    loose, strict = g1(20.0, None, 0.4, 0.8, gamma=-0.1), g1(20.0, None, 0.4, 0.8, gamma=0.1)
    assert loose.threshold == pytest.approx(math.log(20) / bernoulli_kl(0.3, 0.8))
    assert strict.threshold == pytest.approx(math.log(20) / bernoulli_kl(0.5, 0.8))
    assert strict.threshold > loose.threshold  # a stricter margin needs more evidence
    assert g1(20.0, None, 0.95, 0.9, gamma=0.1).threshold == math.inf  # bar 1.0 (clamped): never passable


# ----- issue 26: the rule priced on the served memory, retrieval as a third arm, unmeasured gates --------------
def _from_curves(c, **kw):
    from stmltm_nb.decision.curves import curve_values
    from stmltm_nb.decision.inputs import inputs_from

    return inputs_from(None, {**curve_values(c), "n": 64, "Q": 1000.0, "lam": 5.0, **kw})


def test_the_decision_changes_when_only_the_served_recall_changes():
    from curves_v2 import v2_curves

    from stmltm_nb.decision.curves import priors

    good = v2_curves()
    good["retrieval"] = None  # two arms: the served cartridge against STM
    poor = v2_curves()
    poor["retrieval"] = None
    served = next(r for r in poor["comparison"] if (r["mode"], r["questions"]) == ("LTM + residual STM", "heldout"))
    served.update(recall_cart=0.15, recall_cart_lo=0.08, recall_cart_hi=0.24)  # nothing else changes
    alone = [r for r in poor["comparison"] if r["mode"] == "LTM (cartridge)"]
    assert alone == [r for r in good["comparison"] if r["mode"] == "LTM (cartridge)"]
    assert priors(good).q_cart == 0.8 and priors(poor).q_cart == 0.15
    d_good, d_poor = decide(_from_curves(good, Q=1e5)), decide(_from_curves(poor, Q=1e5))
    assert d_good.consolidate and d_good.arm == "cartridge"
    assert not d_poor.consolidate and d_poor.arm == "stm" and d_poor.terms["q_cart"] == 0.15


def test_retrieval_is_named_when_it_is_cheaper_at_equal_quality():
    from curves_v2 import v2_curves

    x = _from_curves(v2_curves(), Q=1000.0)  # retrieval 0.86 [0.77, 0.93] vs served 0.80 [0.70, 0.88]: overlap
    d = decide(x)
    assert d.arm == "retrieval" and not d.consolidate and d.blocked_by == ["arm: retrieval"]
    assert d.arms["retrieval"].equal_quality and d.arms["cartridge"].equal_quality
    assert not d.arms["stm"].equal_quality  # 0.23 at n = 64 with the STM row's widths: resolved worse
    assert d.arms["retrieval"].cost_s < d.arms["cartridge"].cost_s  # c_upd/Q = 1.5 s/query amortised
    assert "STM + retrieval" in d.explanation and d.to_json()["arm"] == "retrieval"
    many = decide(replace(x, Q=1e8))  # the update amortised over many queries: the cartridge is cheaper
    assert many.arm == "cartridge" and many.consolidate
    worse = decide(replace(x, retrieval=replace(x.retrieval, q=0.3, lo=0.2, hi=0.4), Q=1e8))
    assert worse.arm == "cartridge"
    # resolved better quality wins over a cheaper arm when λ prices the errors
    better = decide(replace(x, Q=1e8, retrieval=replace(x.retrieval, q=0.99, lo=0.97, hi=1.0)))
    assert better.arm == "retrieval" and not better.arms["cartridge"].equal_quality


def test_without_retrieval_or_intervals_the_rule_is_the_two_arm_inequality():
    x = inputs(recall=RECALLS["hyperbolic"])
    d = decide(x)
    assert set(d.arms) == {"stm", "cartridge"} and d.arm == ("cartridge" if d.consolidate else "stm")
    assert d.consolidate == (x.Q * d.terms["A"] >= (1 + x.eta) * x.c_upd)
    # with intervals that overlap, the quality gain is inside the noise: the cheaper arm per query is named
    noisy = decide(replace(x, q_ctx_lo=0.2, q_ctx_hi=0.95, q_cart_lo=0.5, q_cart_hi=1.0, Q=20.0))
    assert noisy.arms["stm"].equal_quality and noisy.arm == "stm"


def test_an_unmeasured_gate_prints_not_measured_and_is_listed():
    d = decide(inputs(recall=RECALLS["hyperbolic"], m=None, snr=None))
    states = {g.name: g.state for g in d.gates}
    assert states["G1 sample size"] == states["G2 SNR"] == states["G6 retention"] == "not measured"
    assert states["G4 quality"] in ("pass", "BLOCK")
    assert d.not_evaluated == ["G1 sample size", "G2 SNR", "G3 MDL", "G5 hold-out", "G6 retention"]
    j = d.to_json()
    assert j["not_evaluated"] == d.not_evaluated and all(g["state"] != "pass" for g in j["gates"] if not g["measured"])
    assert "not evaluated" in d.explanation and "every evaluated gate" in decide(
        inputs(recall=RECALLS["hyperbolic"], Q=1e6)).explanation


def test_retention_gate_blocks_on_its_lower_bound():
    from stmltm_nb.decision.defaults import DEFAULTS
    from stmltm_nb.metrics.ltm_bars import MAX_DNLL

    assert DEFAULTS.dnll_tol == MAX_DNLL == inputs().dnll_tol  # one home: the recipe's ΔNLL bar
    x = inputs(recall=RECALLS["hyperbolic"], Q=1e6)
    assert decide(x).consolidate
    resolved = decide(replace(x, dnll=0.14, dnll_lo=0.09, dnll_hi=0.19))
    assert not resolved.consolidate and resolved.blocked_by[0] == "G6 retention"
    noisy = decide(replace(x, dnll=0.07, dnll_lo=0.02, dnll_hi=0.12))  # above the bar, not resolved: passes
    assert noisy.consolidate and {g.name: g.state for g in noisy.gates}["G6 retention"] == "pass"
    assert not decide(replace(x, dnll=0.07)).consolidate  # no interval: the point value is tested
    with pytest.raises(SwitchingInputError, match="dnll_tol"):
        decide(replace(x, dnll_tol=-1.0))


def test_the_schema_takes_the_retrieval_arm_from_json_and_flags():
    import argparse

    from stmltm_nb.decision.inputs import add_flags, given_flags, inputs_from

    parser = argparse.ArgumentParser()
    add_flags(parser)
    args = parser.parse_args(["--retrieval-q", "0.9", "--retrieval-kappa0", "0.01", "--kappa1", "0.002"])
    from_flags = inputs_from(None, given_flags(args))
    from_json = inputs_from({"retrieval": {"q": 0.9, "kappa0": 0.01}, "cost": {"kappa1": 0.002}})
    assert from_flags == from_json and from_json.retrieval.cost.kappa0 == 0.01 and from_json.cost.kappa1 == 0.002
    assert inputs_from({}).retrieval is None
    with pytest.raises(SwitchingInputError, match="retrieval.q"):
        inputs_from({"retrieval": {"q": 1.5}})
    with pytest.raises(SwitchingInputError, match="without 'retrieval.q'"):
        inputs_from({"retrieval": {"lo": 0.5}})
    with pytest.raises(SwitchingInputError, match="interval"):
        inputs_from({"q_cart_lo": 0.9, "q_cart_hi": 0.5})
