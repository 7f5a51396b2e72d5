import json

import pytest
from curves_v2 import v2_curves

from stmltm_nb.decision.curves import load_curves, ltm_recall, recall_model_from


def _write(tmp_path, c):
    p = tmp_path / "measured_curves.json"
    p.write_text(json.dumps(c))
    return p


def test_ltm_recall_is_the_served_memorys_held_out_recall_of_the_cartridge_facts():
    c = v2_curves()
    assert ltm_recall(c) == 0.8  # the rule's q_cart: cartridge + residual STM, held-out, cartridge facts
    assert ltm_recall(c, mode="LTM (cartridge)") == 0.6  # the cartridge alone, shown beside it
    assert ltm_recall(c, questions="train", mode="LTM (cartridge)") == 0.6  # recall_cart of the train row
    c["comparison"] = [r for r in c["comparison"] if r["mode"] != "LTM + residual STM"]
    assert ltm_recall(c, default=0.5) == 0.5
    null = v2_curves()
    for r in null["comparison"]:
        r["recall_cart"] = r["recall_cart_lo"] = r["recall_cart_hi"] = None
    assert ltm_recall(null) == 0.70  # no per-role figure: the row's overall recall


def test_load_curves_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="stmltm measure"):
        load_curves(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_curves(bad)


def test_load_curves_refuses_an_old_schema(tmp_path):
    c = v2_curves()
    del c["schema_version"]
    with pytest.raises(ValueError, match="schema_version missing.*stmltm measure --split report --seeds 0 1 --out data/measured_curves.json"):
        load_curves(_write(tmp_path, c))
    assert load_curves(_write(tmp_path, v2_curves())) == v2_curves()  # the plain dict, validated


def test_recall_model_from_the_curves():
    curves = v2_curves()
    m = recall_model_from(curves)
    assert m.kind == curves["recall"]["best_fit"]
    pooled = {r["n"]: r["recall"] for r in curves["recall"]["pooled"]}
    assert m(1) >= m(128) and abs(m(1) - pooled[1]) < 0.5
    json.dumps(curves)  # plain JSON, no NaN objects


def test_priors_from_the_curves():
    from stmltm_nb.decision.curves import priors

    curves = v2_curves()
    p = priors(curves)
    secs = curves["consolidation"]["seconds"]
    assert p.cost.kappa1 == pytest.approx(max(0.0, curves["cost"]["fit_cached_linear"]["coef"]["b"]))
    assert p.cost.kappa0 == 0.0 and p.regime == "cached"
    assert p.recall == recall_model_from(curves) and p.q_cart == ltm_recall(curves)
    assert p.c_upd == curves["consolidation"]["c_upd_s"] and p.c_upd_fixed == secs["train"]
    assert p.c_upd_per_item == pytest.approx((secs["teacher"] + secs.get("questions", 0.0)) / curves["n_facts"])
    assert p.r_cart == curves["cartridge"]["r_cart_s"]
    assert p.snr_m == curves["signal"]["per_item_at_init"]["snr_m"]
    # the served memory, not the cartridge alone; intervals, retrieval and retention beside it
    assert (p.q_cart, p.q_cart_ci.lo, p.q_cart_ci.hi) == (0.8, 0.7, 0.88) and p.q_ltm_alone.value == 0.6
    assert p.q_stm.value == 0.28 and p.q_retrieval.value == 0.86
    assert (p.retrieval_cost.kappa0, p.retrieval_cost.kappa1, p.retrieval_k) == (0.0099, 8.5e-06, 4)
    assert (p.dnll.value, p.dnll.lo, p.dnll_ltm.value, p.dnll_step0.value) == (0.03, 0.01, 0.08, 0.02)
    stateless = priors(curves, "stateless")
    assert stateless.cost.kappa1 == pytest.approx(max(0.0, curves["cost"]["fit_stateless_linear"]["coef"]["b"]))
    with pytest.raises(ValueError, match="regime"):
        priors(curves, "warm")


def test_priors_tolerate_partial_and_old_files():
    from stmltm_nb.decision.curves import Priors, priors

    assert priors({"schema_version": 2}) == Priors()
    old = {"schema_version": 2, "n_facts": 4, "consolidation": {"seconds": {"teacher": 8.0, "questions": 4.0, "train": 30.0,
                                                        "total": 42.0}}}
    p = priors(old)  # no c_upd_s: the total; the questions key of older files still counts per item
    assert (p.c_upd, p.c_upd_fixed, p.c_upd_per_item) == (42.0, 30.0, 3.0)
    del old["consolidation"]["seconds"]["questions"]  # newer files drop it
    assert priors(old).c_upd_per_item == 2.0
    no_items = priors({"schema_version": 2, "consolidation": {"c_upd_s": 5.0, "seconds": {"teacher": 1.0}}})
    assert no_items.c_upd == 5.0 and no_items.c_upd_per_item is None and no_items.cost is None
    with pytest.raises(KeyError, match="cost"):
        no_items.require("c_upd", "cost")
    assert no_items.require("c_upd") is no_items


def test_every_consumer_takes_the_same_priors():
    from stmltm_nb.apps.tuner import presets
    from stmltm_nb.decision.controller_config import ControllerConfig
    from stmltm_nb.decision.curves import priors
    from stmltm_nb.decision.policies import world_from_curves

    curves = v2_curves()
    p = priors(curves)
    cfg, world, pre = ControllerConfig.from_curves(curves), world_from_curves(curves), presets(curves)
    assert (cfg.cost, cfg.recall, cfg.q_cart_prior, cfg.c_upd_prior, cfg.r_cart_prior) == (
        p.cost, p.recall, p.q_cart, p.c_upd, p.r_cart)
    assert (world.cost, world.recall, world.q_cart, world.r_cart, world.c_upd0, world.c_upd_item) == (
        p.cost, p.recall, p.q_cart, p.r_cart, p.c_upd_fixed, p.c_upd_per_item)
    cached = pre["measured (cached STM)"]
    assert cached["kappa1"] == p.cost.kappa1 and cached["q_cart"] == p.q_cart and cached["r_cart"] == p.r_cart
    assert pre["measured (stateless STM)"]["kappa1"] == priors(curves, "stateless").cost.kappa1
    with pytest.raises(KeyError):
        world_from_curves({"schema_version": 2, "recall": curves["recall"]})


def test_priors_report_nan_instead_of_clamping_it():
    import copy
    import math

    import pytest

    from stmltm_nb.decision.curves import priors

    for path in (("cost", "fit_cached_linear", "coef", "b"), ("consolidation", "c_upd_s"), ("cartridge", "r_cart_s")):
        bad = copy.deepcopy(v2_curves())
        node = bad
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = math.nan
        with pytest.raises(ValueError, match=".".join(path)):
            priors(bad)


def test_probe_points_become_the_rules_q_cart_points():
    from stmltm_nb.decision.controller_config import ControllerConfig
    from stmltm_nb.decision.curves import priors

    curves = {"schema_version": 2, "q_cart_probe": {"points": [[16, 0.5], [64, 0.62]]}}
    assert priors(curves).q_cart_points == ((16.0, 0.5), (64.0, 0.62))
    assert ControllerConfig.from_curves(curves).q_cart_points == ((16.0, 0.5), (64.0, 0.62))
    empty = {"schema_version": 2}
    assert priors(empty).q_cart_points is None and ControllerConfig.from_curves(empty).q_cart_points == ()
    with pytest.raises(ValueError, match="q_cart_probe"):
        priors({"schema_version": 2, "q_cart_probe": {"points": [[16, float("nan")]]}})


def test_curve_values_feed_the_three_arms_and_retention():
    from stmltm_nb.decision.curves import curve_values
    from stmltm_nb.decision.inputs import inputs_from

    v = curve_values(v2_curves())
    assert (v["q_cart"], v["q_cart_lo"], v["q_cart_hi"]) == (0.8, 0.7, 0.88)
    assert (v["retrieval.q"], v["retrieval.kappa1"], v["dnll_lo"], v["snr_lo"]) == (0.86, 8.5e-06, 0.01, 1.2)
    x = inputs_from(None, v)
    assert x.retrieval.q == 0.86 and x.dnll_lo == 0.01
