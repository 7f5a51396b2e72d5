import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stmltm_nb.metrics.compression import dl_quantized, entropy_bits, g_mdl_information, g_mdl_storage
from stmltm_nb.metrics.governance import candidate_pairs, key_conflicts, model_conflicts, superseded_ids
from stmltm_nb.metrics.signal import gradient_signal, m_star, noise_scale_two_batches
from stmltm_nb.metrics.stats import fit_all_recall, fit_cost, fit_recall, paired_gap, wilson_interval


def test_wilson_known_values():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


@given(st.integers(1, 500), st.data())
def test_wilson_contains_point_estimate(total, data):
    hits = data.draw(st.integers(0, total))
    lo, hi = wilson_interval(hits, total)
    assert 0 <= lo <= hits / total <= hi <= 1


@pytest.mark.parametrize("model, params", [
    ("hyperbolic", {"q0": 0.95, "n50": 12.0}),
    ("exponential", {"q0": 0.9, "nu": 30.0}),
    ("hill", {"q0": 1.0, "n50": 20.0, "k": 1.7}),
    ("linear", {"q0": 0.8, "rho": 0.004}),
])
def test_fits_recover_synthetic_parameters(model, params):
    from stmltm_nb.metrics.stats import RECALL_MODELS

    n = np.array([1, 2, 4, 8, 16, 32, 64, 128], float)
    f, names = RECALL_MODELS[model]
    q = f(n, *[params[k] for k in names])
    fit = fit_recall(n, q, model)
    for k, v in params.items():
        assert fit.params[k] == pytest.approx(v, rel=2e-3)
    assert fit.rmse < 1e-4


def test_fit_all_prefers_true_family():
    n = np.array([1, 2, 4, 8, 16, 32, 64, 128], float)
    rng = np.random.default_rng(0)
    q = 0.9 * np.exp(-n / 25) + rng.normal(0, 0.005, n.size)
    assert fit_all_recall(n, q)[0].model in ("exponential", "hill")


def test_cost_fit_recovers_coefficients():
    n = np.arange(0, 200, 10.0)
    c = 0.05 + 0.002 * n + 1e-5 * n * n
    lin, quad = fit_cost(n, c), fit_cost(n, c, quadratic=True)
    assert quad.coef == pytest.approx({"a": 0.05, "b": 0.002, "c": 1e-5}, rel=1e-6)
    assert quad.rmse < 1e-9 < lin.rmse


def test_gradient_signal_on_known_gaussian():
    rng = np.random.default_rng(1)
    d, m, sigma = 50, 20000, 2.0
    mu = np.full(d, 0.1)
    g = mu + sigma * rng.standard_normal((m, d))
    s = gradient_signal(g)
    true_trace, true_sq = d * sigma**2, float(mu @ mu)
    assert s.trace_cov == pytest.approx(true_trace, rel=0.02)
    assert s.mean_sq_norm == pytest.approx(true_sq, rel=0.15)
    assert s.b_simple == pytest.approx(true_trace / true_sq, rel=0.15)
    assert s.snr1 == pytest.approx(math.sqrt(true_sq / true_trace), rel=0.08)
    assert s.snr_m == pytest.approx(s.snr1 * math.sqrt(m))
    assert s.m_needed(2.0) == pytest.approx(4 * s.b_simple)


def test_cancelling_gradients_have_no_signal():
    g = np.array([[1.0, 0.0], [-1.0, 0.0]] * 10)  # contradictory evidence: mean zero
    s = gradient_signal(g)
    assert s.snr1 == 0 and s.b_simple == math.inf


def test_two_batch_noise_scale_is_exact_in_expectation():
    G2, tr = 0.25, 40.0
    small, big = 4, 64
    g2, trc, b = noise_scale_two_batches(G2 + tr / small, small, G2 + tr / big, big)
    assert (g2, trc, b) == pytest.approx((G2, tr, tr / G2))


def test_m_star_known_values_and_units():
    assert m_star(0.0, 0.1, delta=math.exp(-1)) == pytest.approx(10.0)
    assert m_star(1000, 0.05, 0.05) == pytest.approx((1000 * math.log(2) + math.log(20)) / 0.05)
    assert m_star(10, 0.1, agnostic=True) == pytest.approx((10 * math.log(2) + math.log(20)) / 0.02)
    for bad in [(-1, 0.1), (math.nan, 0.1), (10, 0.0), (10, 2.0)]:
        with pytest.raises(ValueError):
            m_star(*bad)


def test_entropy_and_dl_of_known_distributions():
    rng = np.random.default_rng(2)
    uniform4 = rng.integers(0, 4, 100_000)
    assert entropy_bits(uniform4) / uniform4.size == pytest.approx(2.0, abs=0.01)
    assert entropy_bits(np.zeros(1000)) == 0
    dl = dl_quantized(np.zeros(10_000), step=0.01)
    assert dl["payload_bits"] == 0 and dl["levels"] == 1
    # values on a grid of 8 equiprobable levels: 3 bits per parameter
    delta = rng.integers(-4, 4, 80_000) * 0.5
    dl = dl_quantized(delta, step=0.5)
    assert dl["payload_bits"] / delta.size == pytest.approx(3.0, abs=0.01) and dl["rms_error"] == 0
    assert dl["naive_bits"] == 16 * delta.size
    with pytest.raises(ValueError):
        dl_quantized(np.array([np.nan]), 0.1)


def test_g_mdl_both_units():
    s = g_mdl_storage(n_tokens=1000, kv_bytes_per_token=46080, cartridge_bytes=128 * 46080, resid_tokens=100)
    assert s.unit == "bytes" and s.gain == (1000 - 128 - 100) * 46080
    i = g_mdl_information(stm_bits_base=5000, dl_bits=3000, resid_bits=500)
    assert i.unit == "bits" and i.gain == 1500
    with pytest.raises(ValueError):
        g_mdl_information(-1, 0, 0)


def test_paired_gap_interval():
    a = np.ones(50)
    b = np.zeros(50)
    assert paired_gap(a, b) == (1.0, 1.0, 1.0)
    m, lo, hi = paired_gap(np.r_[np.ones(25), np.zeros(25)], np.zeros(50))
    assert lo < m == 0.5 < hi


def test_key_conflicts_find_shipped_contradictions_only():
    from stmltm_nb.memory.facts import load_facts

    clean = [f.to_item(time=i) for i, f in enumerate(load_facts())]
    assert key_conflicts(clean) == []
    allf = load_facts(contradictions=True)
    items = [f.to_item(time=i) for i, f in enumerate(allf)]
    found = key_conflicts(items)
    expected = {(f.supersedes, f.id) for f in allf if f.supersedes}
    assert {(c.older, c.newer) for c in found} == expected
    assert superseded_ids(items) == {f.supersedes for f in allf if f.supersedes}


def test_model_conflicts_with_a_stub_nll():
    from stmltm_nb.memory.items import STMItem

    a = STMItem("The capital of Lusglaex is Kreistrov.", id="a", answer="Kreistrov", time=1)
    b = STMItem("The capital of Lusglaex is Brommel.", id="b", answer="Brommel", time=2)
    c = STMItem("Dorvan Kell has a cat named Pim.", id="c", answer="Pim", time=3)
    assert candidate_pairs([a, b, c]) == [(0, 1)]

    def nll(ctx, q, ans):  # the answer gets unlikely when a different value for it is in context
        return 3.0 if any(ans not in it.text for it in ctx) else 0.5

    found = model_conflicts([a, b, c], {"a": "What is the capital of Lusglaex?", "c": "Cat?"}, nll)
    assert [(x.older, x.newer, x.reason) for x in found] == [("a", "b", "nll rise")]


@settings(max_examples=50)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=40), st.floats(1e-4, 10))
def test_dl_is_finite_and_non_negative(values, step):
    dl = dl_quantized(np.array(values), step)
    assert math.isfinite(dl["bits"]) and dl["bits"] >= dl["header_bits"] > 0


def test_learning_curve_fit_recovers_power_law_and_extrapolates():
    from stmltm_nb.metrics.probe import fit_learning_curve, probe_prediction

    s = np.arange(1, 201)
    losses = 0.4 + 2.0 * s ** -0.7
    fit = fit_learning_curve(losses[:40])
    assert fit.l_inf == pytest.approx(0.4, abs=0.01) and fit.alpha == pytest.approx(0.7, abs=0.03)
    p = probe_prediction(losses, probe_steps=40, window=1)
    assert abs(p["error"]) < 0.01 and p["ucb"] >= p["predicted"]


def test_streaming_sums_equal_matrix_estimate():
    from stmltm_nb.metrics.signal import gradient_signal_from_sums

    g = np.random.default_rng(3).normal(0.2, 1.0, (30, 7))
    a = gradient_signal(g)
    b = gradient_signal_from_sums(30, g.sum(0), float((g * g).sum()))
    assert a.b_simple == pytest.approx(b.b_simple) and a.trace_cov == pytest.approx(b.trace_cov)


def test_linear_fit_never_has_rising_recall():
    fit = fit_recall([1, 4, 16], [0.5, 0.5, 1.0], "linear")
    assert fit.params["rho"] == 0 and 0 <= fit.params["q0"] <= 1


def test_gram_estimates_equal_the_row_estimates_and_the_bootstrap_bounds_from_below():
    from stmltm_nb.metrics.signal import bootstrap_snr_m, gradient_signal_from_gram

    rng = np.random.default_rng(1)
    g = rng.normal(0.3, 1.0, size=(24, 50))  # a real signal: SNR_m well above 1
    a, b = gradient_signal(g), gradient_signal_from_gram(g @ g.T, n_boot=400)
    assert b.snr_m == pytest.approx(a.snr_m) and b.b_simple == pytest.approx(a.b_simple)
    assert 0 < b.snr_m_lo < b.snr_m  # a one-sided lower bound sits below the point estimate
    assert bootstrap_snr_m(g @ g.T, 400, 0.05, seed=0) == b.snr_m_lo  # seeded: reproducible
    assert bootstrap_snr_m(g @ g.T, 400, 0.01) <= bootstrap_snr_m(g @ g.T, 400, 0.2)  # wider at smaller alpha
    # noise only: the point estimate can scrape above a low tau by chance, the lower bound does not
    noise = rng.normal(0.0, 1.0, size=(24, 50))
    sig = gradient_signal_from_gram(noise @ noise.T, n_boot=400)
    assert sig.snr_m_lo < 1.0
    few = rng.normal(0.3, 1.0, size=(5, 50))  # too few items for a bootstrap: no bound, the gate uses SNR_m
    assert gradient_signal_from_gram(few @ few.T).snr_m_lo is None
    with pytest.raises(ValueError, match="square"):
        gradient_signal_from_gram(np.ones((3, 2)))
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_snr_m(g @ g.T, 10, alpha=1.5)


def test_binomial_fits_rank_by_aicc_with_akaike_weights():
    n = [1, 2, 4, 8, 16, 32, 64]
    trials = [12] * 7
    q = [11 / 12, 10 / 12, 9 / 12, 7 / 12, 5 / 12, 3 / 12, 1 / 12]
    fits = fit_all_recall(n, q, trials)
    assert all(f.loglik is not None and f.loglik < 0 for f in fits)
    assert [f.aicc for f in fits] == sorted(f.aicc for f in fits)  # best first
    assert sum(f.weight for f in fits) == pytest.approx(1.0) and fits[0].weight == max(f.weight for f in fits)
    k = len(fits[0].params)
    assert fits[0].aicc == pytest.approx(2 * k - 2 * fits[0].loglik + 2 * k * (k + 1) / (84 - k - 1))
    # the likelihood fit is the maximum: nudging a parameter never raises the log-likelihood
    hyp = fit_recall(n, q, "hyperbolic", trials)
    for dq in (-0.01, 0.01):
        nudged = {**hyp.params, "q0": min(1.0, hyp.params["q0"] + dq)}
        p = np.clip(hyp.__class__("hyperbolic", nudged, [], 0, 0).predict(n), 1e-9, 1 - 1e-9)
        h = np.round(np.array(q) * 12)
        assert float((h * np.log(p) + (12 - h) * np.log(1 - p)).sum()) <= hyp.loglik + 1e-9
    with pytest.raises(ValueError, match="trials"):
        fit_recall(n, q, "hyperbolic", [12, 0, 12, 12, 12, 12, 12])


def test_recall_probe_offset_and_prediction():
    import math

    from stmltm_nb.metrics.probe import predict_q_cart, probe_offset

    logit = lambda q: math.log(q / (1 - q))  # noqa: E731
    assert probe_offset([(0.25, 0.5)]) == pytest.approx(math.log(3))
    assert probe_offset([(0.2, 0.5), (0.5, 0.8)]) == pytest.approx((logit(0.5) - logit(0.2) + logit(0.8)) / 2)
    off = probe_offset([(0.11, 0.45)])
    assert predict_q_cart(0.11, off) == pytest.approx(0.45)  # the calibration pair maps onto itself
    assert 0.45 < predict_q_cart(0.3, off) < 1 and predict_q_cart(0.99, off) < 1  # never above 1
    assert predict_q_cart(0.0, 0.0) == pytest.approx(1 / 128) and predict_q_cart(0.5, 0.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one"):
        probe_offset([])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        probe_offset([(1.2, 0.5)])


def test_probe_table_pairs_calibrates_and_judges():
    from stmltm_nb.metrics.probe import predict_q_cart, probe_offset, probe_table

    rows = [{"split": "tune", "n": 64, "kind": "full", "q": 0.45, "seconds": 100.0},
            {"split": "tune", "n": 64, "kind": "probe", "q": 0.11, "seconds": 25.0},
            {"split": "report", "n": 64, "kind": "probe", "q": 0.08, "q_train": 0.14, "seconds": 25.0},
            {"split": "report", "n": 16, "kind": "probe", "q": 0.44, "seconds": 25.0},
            {"split": "report", "n": 64, "kind": "full", "q": 0.40, "seconds": 100.0}]
    t = probe_table(rows, 0.25, "steps")  # rows without a variant are the first design's
    off = probe_offset([(0.11, 0.45)])
    assert t["offset"] == pytest.approx(off) and t["probe_share"] == 0.25
    assert [r["n"] for r in t["rows"]] == [16, 64]  # report probes only, by size
    r16, r64 = t["rows"]
    assert r16["measured"] is None and r16["error"] is None and r16["within_0_10"] is None
    assert r64["predicted"] == pytest.approx(predict_q_cart(0.08, off)) and r64["q_probe_train"] == 0.14
    assert r64["error"] == pytest.approx(r64["predicted"] - 0.40)
    assert r64["measured_se"] == pytest.approx((0.40 * 0.60 / 64) ** 0.5) and r16["measured_se"] is None
    assert r64["within_0_10"] == (abs(r64["error"]) <= 0.10) and t["measured_sizes"] == 1
    assert t["within"] == int(r64["within_0_10"]) and t["calibration"] == [
        {"n": 64, "q_probe": 0.11, "q_probe_train": None, "q_full": 0.45}]
    assert t["verdict"] == ("within ±0.10 at every size measured" if r64["within_0_10"]
                            else "not within ±0.10 at every size measured")
    assert probe_table(rows[2:], 0.25, "steps")["rows"] == []  # nothing to calibrate on: no table
    assert probe_table(rows, 0.25, "replica")["rows"] == []  # no replica probes among them: none calibrated or judged
    replica = [{**r, "variant": "replica", "items": 16, "q": r["q"] + 0.2} for r in rows if r["kind"] == "probe"]
    t2 = probe_table(rows + replica, 0.25, "replica")  # both designs in one file: each judged on its own calibration
    assert t2["variant"] == "replica" and t2["offset"] == pytest.approx(probe_offset([(0.31, 0.45)]))
    assert [r["probe_items"] for r in t2["rows"]] == [16, 16] and t2["rows"][1]["q_probe"] == pytest.approx(0.28)
    assert probe_table(rows + replica, 0.25, "steps") == t  # the other design's rows change nothing
