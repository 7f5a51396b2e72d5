import json

import pytest

from stmltm_nb.decision.curves import load_curves, ltm_recall, recall_model_from


def test_ltm_recall_is_the_held_out_recall_of_the_cartridge_facts():
    row = {"mode": "LTM (cartridge)", "questions": "heldout", "recall": 0.6, "recall_cart": 0.7}
    trained = {"mode": "LTM (cartridge)", "questions": "train", "recall": 0.8, "recall_cart": 0.9}
    assert ltm_recall({"comparison": [trained, row]}) == 0.7  # what the rule uses: questions it never trained on
    assert ltm_recall({"comparison": [trained, row]}, questions="train") == 0.9
    old = dict(row)
    del old["recall_cart"]
    assert ltm_recall({"comparison": [old]}) == 0.6  # files written before the split
    assert ltm_recall({"comparison": []}, default=0.5) == 0.5


def test_load_curves_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="stmltm measure"):
        load_curves(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_curves(bad)


def test_recall_model_from_the_shipped_curves():
    curves = load_curves()
    m = recall_model_from(curves)
    assert m.kind == curves["recall"]["best_fit"]
    pooled = {r["n"]: r["recall"] for r in curves["recall"]["pooled"]}
    assert m(1) >= m(128) and abs(m(1) - pooled[1]) < 0.5
    json.dumps(curves)  # plain JSON, no NaN objects


def test_priors_from_the_shipped_curves():
    from stmltm_nb.decision.curves import priors

    curves = load_curves()
    p = priors(curves)
    secs = curves["consolidation"]["seconds"]
    assert p.cost.kappa1 == pytest.approx(max(0.0, curves["cost"]["fit_cached_linear"]["coef"]["b"]))
    assert p.cost.kappa0 == 0.0 and p.regime == "cached"
    assert p.recall == recall_model_from(curves) and p.q_cart == ltm_recall(curves)
    assert p.c_upd == curves["consolidation"]["c_upd_s"] and p.c_upd_fixed == secs["train"]
    assert p.c_upd_per_item == pytest.approx((secs["teacher"] + secs.get("questions", 0.0)) / curves["n_facts"])
    assert p.r_cart == curves["cartridge"]["r_cart_s"]
    assert p.snr_m == curves["signal"]["per_item_at_init"]["snr_m"]
    stateless = priors(curves, "stateless")
    assert stateless.cost.kappa1 == pytest.approx(max(0.0, curves["cost"]["fit_stateless_linear"]["coef"]["b"]))
    with pytest.raises(ValueError, match="regime"):
        priors(curves, "warm")


def test_priors_tolerate_partial_and_old_files():
    from stmltm_nb.decision.curves import Priors, priors

    assert priors({}) == Priors()
    old = {"n_facts": 4, "consolidation": {"seconds": {"teacher": 8.0, "questions": 4.0, "train": 30.0,
                                                        "total": 42.0}}}
    p = priors(old)  # no c_upd_s: the total; the questions key of older files still counts per item
    assert (p.c_upd, p.c_upd_fixed, p.c_upd_per_item) == (42.0, 30.0, 3.0)
    del old["consolidation"]["seconds"]["questions"]  # newer files drop it
    assert priors(old).c_upd_per_item == 2.0
    no_items = priors({"consolidation": {"c_upd_s": 5.0, "seconds": {"teacher": 1.0}}})
    assert no_items.c_upd == 5.0 and no_items.c_upd_per_item is None and no_items.cost is None
    with pytest.raises(KeyError, match="cost"):
        no_items.require("c_upd", "cost")
    assert no_items.require("c_upd") is no_items


def test_every_consumer_takes_the_same_priors():
    from stmltm_nb.apps.tuner import presets
    from stmltm_nb.decision.controller_config import ControllerConfig
    from stmltm_nb.decision.curves import priors
    from stmltm_nb.decision.policies import world_from_curves

    curves = load_curves()
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
        world_from_curves({"recall": curves["recall"]})


def test_priors_report_nan_instead_of_clamping_it():
    import copy
    import math

    import pytest

    from stmltm_nb.decision.curves import load_curves, priors

    for path in (("cost", "fit_cached_linear", "coef", "b"), ("consolidation", "c_upd_s"), ("cartridge", "r_cart_s")):
        bad = copy.deepcopy(load_curves())
        node = bad
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = math.nan
        with pytest.raises(ValueError, match=".".join(path)):
            priors(bad)


def test_probe_points_become_the_rules_q_cart_points():
    from stmltm_nb.decision.controller_config import ControllerConfig
    from stmltm_nb.decision.curves import priors

    curves = {"q_cart_probe": {"points": [[16, 0.5], [64, 0.62]]}}
    assert priors(curves).q_cart_points == ((16.0, 0.5), (64.0, 0.62))
    assert ControllerConfig.from_curves(curves).q_cart_points == ((16.0, 0.5), (64.0, 0.62))
    assert priors({}).q_cart_points is None and ControllerConfig.from_curves({}).q_cart_points == ()
    with pytest.raises(ValueError, match="q_cart_probe"):
        priors({"q_cart_probe": {"points": [[16, float("nan")]]}})
