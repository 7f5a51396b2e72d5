"""The demo's decision on the cartridge it just trained, without torch: a hand-made results dict as
``stmltm demo`` builds it (schema 2)."""

from curves_v2 import MODES, _row, v2_curves


def _res(served: float, lo: float, hi: float, stm: float = 0.42) -> dict:
    c = v2_curves()
    rows = []
    for m in MODES:
        for q in ("train", "heldout"):
            r = _row(m, q)
            r.update(n_facts=20, n_questions=20, split=None, seeds=None)
            if m == "STM (all items)" and q == "heldout":
                r.update(recall_cart=stm, recall_cart_lo=max(0.0, stm - 0.2), recall_cart_hi=min(1.0, stm + 0.2))
            if m == "LTM + residual STM" and q == "heldout":
                r.update(recall_cart=served, recall_cart_lo=lo, recall_cart_hi=hi)
            rows.append(r)
    by_pos = [{"n": n, "position": p, "recall": 0.5, "lo": 0.3, "hi": 0.7} for n in (1, 16) for p in
              ("start", "middle", "end")]
    return {"schema_version": 2, "model": "tiny", "n_facts": 16, "fast": False,
            "recall": {**c["recall"], "by_position": by_pos,
                       "fits": [{**f, "residuals": [], "rmse": 0.1, "aic": 1.0} for f in c["recall"]["fits"]],
                       "pooled": [{"n": 1, "recall": 0.6, "lo": 0.4, "hi": 0.8}, {"n": 16, "recall": 0.45,
                                                                                 "lo": 0.3, "hi": 0.6}]},
            "cost": c["cost"], "cartridge": {"r_cart_s": 0.0, "p": 64},
            "consolidation": {"c_upd_s": 120.0, "seconds": {"teacher": 20.0, "train": 100.0, "total": 120.0}},
            "comparison": rows, "total_seconds": 240.0}


def test_a_cartridge_no_better_than_stm_waits_and_says_what_it_decided_on(tmp_path):
    from stmltm_nb.apps.demo import demo_decision, write_html

    res = _res(0.42, 0.25, 0.60)  # served memory as good as STM (all items) on the same questions
    with_retrieval = demo_decision(res)
    assert not with_retrieval["consolidate"] and with_retrieval["arm"] == "retrieval"  # 0.86 [0.77, 0.93]
    res["comparison"] = [r for r in res["comparison"] if r["mode"] != "STM + retrieval"]
    d = demo_decision(res)
    assert not d["consolidate"] and d["arm"] == "stm"
    assert "this run's cartridge" in d["source"] and "0.42 [0.25, 0.60]" in d["source"]
    assert d["inputs"]["q_cart"] == 0.42 and d["inputs"]["c_upd"] == 120.0 and d["inputs"]["m"] == 16
    gates = {g["name"]: g for g in d["gates"]}
    assert gates["G1 sample size"]["measured"] and gates["G1 sample size"]["value"] == 16
    assert gates["G1 sample size"]["state"] == "BLOCK"  # m* = inf: a cartridge not predicted to beat STM
    assert gates["G5 hold-out"]["measured"] and gates["G5 hold-out"]["state"] == "BLOCK"
    assert d["not_evaluated"] == ["G2 SNR", "G3 MDL", "G6 retention"]
    res["decision"] = d
    page = (write_html(res, tmp_path / "report.html")).read_text()
    assert "this run&#x27;s cartridge" in page and "Decision: WAIT" in page
    for name in d["not_evaluated"]:
        assert f"<td>{name}</td><td>not measured</td>" in page
    assert "all gates pass" not in page and "Not evaluated (not measured in this run): G2 SNR, G3 MDL" in page


def test_a_clearly_better_served_cartridge_is_decided_on_its_own_numbers():
    from stmltm_nb.apps.demo import demo_decision

    res = _res(0.97, 0.90, 1.0, stm=0.3)
    res["retention"] = v2_curves()["retention"]
    for r in res["comparison"]:
        if r["mode"] == "STM + retrieval":
            r.update(recall_cart=0.5, recall_cart_lo=0.4, recall_cart_hi=0.6)
    d = demo_decision(res, Q=1e5)
    gates = {g["name"]: g for g in d["gates"]}
    assert gates["G6 retention"]["measured"] and gates["G5 hold-out"]["state"] == "pass"
    assert gates["G1 sample size"]["state"] == "pass"  # m = 16 against the Chernoff m*
    assert d["consolidate"] and d["arm"] == "cartridge"
    # retrieval (0.50 [0.40, 0.60]) is resolved below the served cartridge: priced at its own recall
    assert d["arms"]["retrieval"]["equal_quality"] is False and d["arms"]["retrieval"]["q_eff"] == 0.5
