"""A lever against its baseline (stmltm_nb.metrics.levers): paired, relation-clustered differences (no torch)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from stmltm_nb.metrics.comparison import LTM, SERVED
from stmltm_nb.metrics.levers import lever_gaps, lever_table, recipe_text

BASELINE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "lever_tune_baseline.json"


def make_run(hit, relations: int = 8, facts: int = 3, wordings: int = 2, recipe=None, retention=None):
    """A cartridges-only run: ``hit(mode, kind, role, relation, fact, wording)`` -> 0/1 for every question."""
    recs = []
    for mode in (LTM, SERVED):
        for kind in ("train", "heldout"):
            for rel in range(relations):
                for f in range(facts):
                    role = "resid" if (mode == SERVED and f == facts - 1) else "cart"
                    if mode == LTM and f == facts - 1:
                        continue  # the cartridge alone is asked its own facts only here
                    for w in range(wordings):
                        recs.append({"mode": mode, "kind": kind, "fact": f"r{rel}f{f}", "relation": f"rel{rel}",
                                     "role": role, "seed": 0, "w": w, "hit": hit(mode, kind, role, rel, f, w), "s": 1.0})
    rows = [{"mode": m, "delta_nll": d, "lo": lo, "hi": hi} for m, (d, lo, hi) in (retention or {}).items()]
    return {"model": "m", "fast": False, "n_facts": 16, "n_resid": 8, "seeds": [0], "split": {"name": "tune"},
            "recipe": recipe or {}, "evaluation": {"seed0": recs}, "retention": {"rows": rows}}


def row(rows, memory, questions, facts="cartridge facts"):
    return next(r for r in rows if (r["memory"], r["questions"], r["facts"]) == (memory, questions, facts))


def test_a_run_against_itself_differs_by_nothing():
    base = make_run(lambda m, k, role, rel, f, w: (rel + f + w) % 2)
    rows = lever_gaps(base, copy.deepcopy(base), n_boot=300)
    assert {(r["memory"], r["questions"], r["facts"]) for r in rows} == {
        (m, k, f) for m in (LTM, SERVED) for k in ("train", "heldout") for f in ("cartridge facts",)} | {
        (SERVED, k, "residual notes") for k in ("train", "heldout")}
    for r in rows:
        assert r["delta"] == r["lo"] == r["hi"] == 0.0 and r["verdict"] == "not resolved"
        assert r["base"] == r["lever"]


def test_a_gain_on_every_relation_is_resolved_and_measured():
    base = make_run(lambda m, k, role, rel, f, w: w)  # half the questions
    lever = make_run(lambda m, k, role, rel, f, w: 1 if (m == SERVED and role == "cart") else w)
    rows = lever_gaps(base, lever, n_boot=500)
    served = row(rows, SERVED, "heldout")
    assert served["base"] == 0.5 and served["lever"] == 1.0 and served["delta"] == pytest.approx(0.5)
    assert 0 < served["lo"] <= 0.5 <= served["hi"] and served["verdict"] == "better"
    assert row(rows, LTM, "heldout")["verdict"] == "not resolved"  # untouched
    worse = lever_gaps(lever, base, n_boot=500)
    assert row(worse, SERVED, "train")["verdict"] == "worse"


def test_a_gain_inside_one_relation_is_not_resolved():
    """Failures cluster by relation: a lever that helps one relation of eight is no resolved gain, although a
    bootstrap over questions would call it one (6 of 48 questions flipped, never 0 of 48 by chance)."""
    base = make_run(lambda m, k, role, rel, f, w: 0)
    lever = make_run(lambda m, k, role, rel, f, w: int(rel == 3))
    r = row(lever_gaps(base, lever, n_boot=1000), LTM, "heldout")
    assert r["delta"] == pytest.approx(1 / 8)
    assert r["lo"] <= 0 < r["hi"] and r["verdict"] == "not resolved"


def test_retention_compares_the_two_intervals():
    base = make_run(lambda *a: 1, retention={LTM: (0.20, 0.18, 0.25), SERVED: (0.07, 0.05, 0.09)})
    lever = make_run(lambda *a: 1, retention={LTM: (0.05, 0.03, 0.07), SERVED: (0.08, 0.06, 0.10)})
    rows = lever_gaps(base, lever, n_boot=100)
    ltm = row(rows, LTM, "general text", "ΔNLL (nats/token)")
    assert ltm["verdict"] == "better" and ltm["delta"] == pytest.approx(-0.15)
    assert row(rows, SERVED, "general text", "ΔNLL (nats/token)")["verdict"] == "not resolved"
    worse = lever_gaps(lever, base, n_boot=100)
    assert row(worse, LTM, "general text", "ΔNLL (nats/token)")["verdict"] == "worse"


def test_runs_of_other_protocols_are_refused_by_name():
    base = make_run(lambda *a: 1)
    other = copy.deepcopy(base)
    other["split"]["name"] = "report"
    with pytest.raises(ValueError, match="different splits"):
        lever_gaps(base, other)
    other = copy.deepcopy(base)
    other["seeds"] = [0, 1]
    with pytest.raises(ValueError, match="'seeds'"):
        lever_gaps(base, other)
    fewer = copy.deepcopy(base)
    fewer["evaluation"]["seed0"] = [r for r in fewer["evaluation"]["seed0"]
                                    if not (r["fact"] == "r2f1" and r["kind"] == "heldout" and r["w"] == 1)]
    with pytest.raises(ValueError, match="the lever's run did not ask .* question 1 about r2f1"):
        lever_gaps(base, fewer)
    with pytest.raises(ValueError, match="the baseline did not ask"):
        lever_gaps(fewer, base)
    twice = copy.deepcopy(base)
    twice["evaluation"]["seed0"].append(dict(twice["evaluation"]["seed0"][0]))
    with pytest.raises(ValueError, match="about r0f0 .* is recorded twice"):
        lever_gaps(twice, base)


def test_the_table_names_the_lever_and_prints_intervals():
    base = make_run(lambda m, k, role, rel, f, w: w, retention={LTM: (0.2, 0.18, 0.25)})
    lever = make_run(lambda m, k, role, rel, f, w: 1, recipe={"standins": "pool", "residual_max": 8},
                     retention={LTM: (0.1, 0.08, 0.12)})
    assert recipe_text(lever) == "residual_max=8 standins=pool" and recipe_text(base) == "shipped recipe"
    t = lever_table(base, {recipe_text(lever): lever}, n_boot=200)
    assert set(t["lever"]) == {"residual_max=8 standins=pool"}
    first = t.iloc[0]
    assert first["baseline"] == "0.50" and first["lever value"] == "1.00"
    assert first["lever − baseline"].startswith("+0.50 [+") and first["verdict"] == "better"
    assert t.iloc[-1]["verdict"] == "better" and "lever [+0.080, +0.120]" in t.iloc[-1]["lever − baseline"]


def test_the_shipped_baseline_reads_as_its_own_reference():
    base = json.loads(BASELINE.read_text())
    rows = lever_gaps(base, base, n_boot=200)
    ltm = row(rows, LTM, "heldout")
    assert ltm["n_questions"] == 192 and ltm["base"] == pytest.approx(0.615, abs=0.005)
    assert all(r["delta"] == 0 for r in rows)


def test_the_figure_draws_each_recall_part_with_its_interval():
    from stmltm_nb.apps.viz import fig_levers

    base = make_run(lambda m, k, role, rel, f, w: w, retention={LTM: (0.2, 0.18, 0.25)})
    lever = make_run(lambda m, k, role, rel, f, w: 1, retention={LTM: (0.1, 0.08, 0.12)})
    gaps = lever_gaps(base, lever, n_boot=200)
    fig = fig_levers({"all hits": gaps})
    (trace,) = fig.data
    assert len(trace.x) == 6 and trace.name == "all hits"  # the 6 recall parts; retention has no paired interval
    assert list(trace.x) == pytest.approx([0.5] * 6)
    assert all(0 < lo <= 0.5 for lo in (x - m for x, m in zip(trace.x, trace.error_x.arrayminus)))


def test_lever_runs_are_read_by_name_beside_their_baseline(tmp_path):
    from stmltm_nb.metrics.levers import read_lever_runs

    assert read_lever_runs(tmp_path) == (None, {})
    base, lever = make_run(lambda *a: 0), make_run(lambda *a: 1, recipe={"standins": "pool"})
    (tmp_path / "lever_tune_baseline.json").write_text(json.dumps(base))
    (tmp_path / "lever_tune_pool.json").write_text(json.dumps(lever))
    (tmp_path / "policy_regret.json").write_text("{}")  # another result file is no lever
    got_base, runs = read_lever_runs(tmp_path)
    assert got_base == base and list(runs) == ["pool"] and recipe_text(runs["pool"]) == "standins=pool"


def test_the_stated_rule_keeps_trades_or_drops():
    from stmltm_nb.metrics.levers import lever_decision

    base = make_run(lambda m, k, role, rel, f, w: w, retention={LTM: (0.20, 0.18, 0.22), SERVED: (0.07, 0.05, 0.09)})
    served_up = make_run(lambda m, k, role, rel, f, w: 1 if (m == SERVED and role == "cart") else w,
                         retention={LTM: (0.20, 0.18, 0.22), SERVED: (0.07, 0.05, 0.09)})
    costly = make_run(lambda m, k, role, rel, f, w: 1 if (m == SERVED and role == "cart") else w,
                      retention={LTM: (0.20, 0.18, 0.22), SERVED: (0.14, 0.11, 0.16)})
    keep = lever_decision(lever_gaps(base, served_up, n_boot=300), "served_heldout")
    assert keep["decision"] == "keep" and keep["worse"] == [] and "served_heldout" in keep["better"]
    trade = lever_decision(lever_gaps(base, costly, n_boot=300), "served_heldout")
    assert trade["decision"] == "trade" and trade["worse"] == ["dnll_served"]
    drop = lever_decision(lever_gaps(base, served_up, n_boot=300), "ltm_heldout")  # its target did not move
    assert drop["decision"] == "drop" and drop["verdict"] == "not resolved"
    with pytest.raises(ValueError, match="target 'q_cart' was not measured"):
        lever_decision(lever_gaps(base, served_up, n_boot=10), "q_cart")


def test_the_plan_names_a_measured_part(tmp_path):
    from stmltm_nb.metrics.levers import read_lever_plan

    assert read_lever_plan(tmp_path) == {}
    (tmp_path / "lever_plan.json").write_text(json.dumps({"pool": {"set": "standins=pool", "target": "served"}}))
    with pytest.raises(ValueError, match="lever 'pool' has target 'served'"):
        read_lever_plan(tmp_path)
    shipped = read_lever_plan(BASELINE.parent)
    assert shipped["pool"]["target"] == "served_heldout"


def test_a_plan_entry_builds_on_a_lever_it_holds(tmp_path):
    from stmltm_nb.metrics.levers import read_lever_plan

    entry = {"set": "x=1", "target": "ltm_heldout"}
    (tmp_path / "lever_plan.json").write_text(json.dumps({"a": entry, "b": {**entry, "builds_on": "a"}}))
    assert read_lever_plan(tmp_path)["b"]["builds_on"] == "a"
    (tmp_path / "lever_plan.json").write_text(json.dumps({"b": {**entry, "builds_on": "a"}}))
    with pytest.raises(ValueError, match="builds on 'a', which the plan does not hold"):
        read_lever_plan(tmp_path)
