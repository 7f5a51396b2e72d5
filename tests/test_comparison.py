"""The comparison table's statistics (no torch): relation-clustered intervals, seeds, the teacher ratio,
retention paired over passages, and the recall curve's distinct questions."""

import numpy as np
import pytest

from stmltm_nb.metrics import comparison as C
from stmltm_nb.metrics.measure import curve_plan, pooled_recall
from stmltm_nb.metrics.stats import cluster_bootstrap, wilson_interval


def _records(mode, hits_by_relation, seed=None, role="cart", kind="heldout", per_fact=3):
    out = []
    for rel, hits in hits_by_relation.items():
        for i, h in enumerate(hits):
            for w in range(per_fact):
                out.append({"mode": mode, "kind": kind, "fact": f"{rel}{i}", "relation": rel, "role": role,
                            "seed": seed, "w": w, "hit": h, "s": 0.1})
    return out


def test_cluster_bootstrap_is_wider_than_binomial_when_failures_cluster():
    # 16 relations x 4 facts x 3 wordings: half the relations always right, half always wrong
    recs = _records("m", {f"r{i}": [int(i % 2 == 0)] * 4 for i in range(16)})
    mean, lo, hi = cluster_bootstrap([r["relation"] for r in recs], [r["fact"] for r in recs],
                                     [r["hit"] for r in recs], n_boot=1000)
    w_lo, w_hi = wilson_interval(sum(r["hit"] for r in recs), len(recs))
    assert mean == 0.5 and lo < mean < hi
    assert hi - lo > 1.5 * (w_hi - w_lo)  # ~±0.25 clustered vs ~±0.07 pretending 192 independent questions


def test_cluster_bootstrap_narrow_when_relations_agree_and_checks_input():
    recs = _records("m", {f"r{i}": [1, 1, 0, 0] for i in range(16)})
    mean, lo, hi = cluster_bootstrap([r["relation"] for r in recs], [r["fact"] for r in recs],
                                     [r["hit"] for r in recs], n_boot=1000)
    assert mean == 0.5 and hi - lo < 0.3
    with pytest.raises(ValueError, match="equal length"):
        cluster_bootstrap(["a"], ["x", "y"], [1])
    assert cluster_bootstrap(["a"] * 3, ["x"] * 3, [1, 1, 1]) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("cells", [None, 500])
def test_cluster_bootstrap_draws_like_the_two_stage_loop_it_replaced(cells, monkeypatch):
    """The resampling is vectorised (blocks of resamples at once; 500 cells: a block of 6 resamples, so many blocks);
    its interval is the one a plain loop gives (clusters with replacement, then units within each drawn cluster), up
    to Monte Carlo error (20,000 resamples each: about ±0.01), on clusters of unequal sizes and questions per unit."""
    import numpy as np

    from stmltm_nb.metrics import stats

    if cells:
        monkeypatch.setattr(stats, "BOOTSTRAP_CELLS", cells)

    rng = np.random.default_rng(7)
    clusters, units, hits = [], [], []
    for c, n_units in enumerate([1, 2, 3, 5, 8, 13]):
        p = (c + 1) / 7
        for u in range(n_units):
            for _ in range(1 + u % 3):
                clusters.append(f"c{c}"), units.append(f"c{c}u{u}"), hits.append(float(rng.random() < p))
    by: dict = {}
    for c, u, h in zip(clusters, units, hits):
        by.setdefault(c, {}).setdefault(u, []).append(h)
    cl = [[(sum(v), len(v)) for v in us.values()] for us in by.values()]
    loop = []
    for _ in range(20_000):
        s = n = 0.0
        for ci in rng.integers(0, len(cl), size=len(cl)):
            for k in rng.integers(0, len(cl[ci]), size=len(cl[ci])):
                s, n = s + cl[ci][k][0], n + cl[ci][k][1]
        loop.append(s / n)
    ref_lo, ref_hi = np.quantile(loop, [0.025, 0.975])
    mean, lo, hi = cluster_bootstrap(clusters, units, hits, n_boot=20_000, seed=1)
    assert mean == np.mean(hits) and abs(lo - ref_lo) < 0.03 and abs(hi - ref_hi) < 0.03, (lo, hi, ref_lo, ref_hi)
    assert cluster_bootstrap(clusters, units, hits, n_boot=20_000, seed=1) == (mean, lo, hi)  # seeded: repeatable


def test_comparison_rows_seeds_roles_and_teacher_fraction():
    teacher = _records(C.TEACHER, {"a": [1, 1], "b": [1, 0]})
    s0 = _records(C.SERVED, {"a": [1, 0], "b": [0, 0]}, seed=0)
    s1 = _records(C.SERVED, {"a": [1, 1], "b": [1, 0]}, seed=1)
    resid = _records(C.SERVED, {"c": [1, 1]}, seed=0, role="resid") + _records(C.SERVED, {"c": [1, 0]}, seed=1,
                                                                             role="resid")
    rows = {r["mode"]: r for r in C.comparison_rows(teacher + s0 + s1 + resid, split="report", n_boot=200)}
    served = rows[C.SERVED]
    assert served["seeds"] == pytest.approx([1 / 2, 2 / 3])  # seed 0: 1/4 cart + 2/2 resid; seed 1: 3/4 + 1/2
    assert served["recall"] == pytest.approx(7 / 12)
    assert served["recall_cart"] == pytest.approx(4 / 8) and served["recall_resid"] == pytest.approx(3 / 4)
    assert served["n_questions"] == 18 and served["n_facts"] == 6 and served["n_relations"] == 3
    assert served["lo"] <= served["recall"] <= served["hi"]
    assert rows[C.TEACHER]["frac_of_teacher"] == 1.0 and rows[C.TEACHER]["seeds"] is None
    # the teacher was asked about facts a0,a1,b0,b1 only: 3/4 of them right
    assert served["frac_of_teacher"] == pytest.approx((7 / 12) / 0.75)
    assert list(rows) == [C.TEACHER, C.SERVED] and served["split"] == "report"


def test_a_row_answered_in_batches_carries_no_seconds_per_query():
    """Seconds of batched records are the batch's shared out, not one query's latency: such a row says so with None
    (and the readable table says "not timed"); a row asked one by one keeps its mean."""
    timed = _records(C.RETRIEVAL, {"a": [1, 0]})
    batched = [{**r, "batch": 8} for r in _records(C.LTM, {"a": [1, 1]})]
    rows = {r["mode"]: r for r in C.comparison_rows(timed + batched, n_boot=100)}
    assert rows[C.RETRIEVAL]["s_per_query"] == pytest.approx(0.1) and rows[C.LTM]["s_per_query"] is None
    shown = C.display_table(list(rows.values())).set_index("memory")["s/query"]
    assert shown[C.LTM] == "not timed (batched)" and shown[C.RETRIEVAL] == pytest.approx(0.1)


def test_retention_rows_pair_against_no_memory_and_average_seeds():
    base = [2.0, 3.0, 4.0, 5.0]
    nll = {C.NO_MEMORY: {None: base}, C.STEP0: {None: [b + 0.5 for b in base]},
           C.LTM: {0: [b + 0.1 for b in base], 1: [b + 0.3 for b in base]}}
    out = C.retention_rows(nll, tokens=2000, n_boot=200)
    rows = {r["mode"]: r for r in out["rows"]}
    assert out["passages"] == 4 and out["tokens"] == 2000
    assert rows[C.NO_MEMORY]["delta_nll"] == 0
    assert rows[C.STEP0]["delta_nll"] == pytest.approx(0.5) and rows[C.STEP0]["seeds"] is None
    assert rows[C.LTM]["delta_nll"] == pytest.approx(0.2) and rows[C.LTM]["seeds"] == pytest.approx([0.1, 0.3])
    with pytest.raises(ValueError, match="other passages"):
        C.retention_rows({C.NO_MEMORY: {None: base}, C.LTM: {0: base[:2]}}, tokens=1)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8, 16, 32, 64, 128])
def test_curve_plan_asks_distinct_questions_at_every_size(n):
    plan = curve_plan(n, 208, per_position=8, min_questions=24)
    asked = [i for _, _, idx in plan for i in idx]
    assert len(asked) == len(set(asked)) >= 24
    for start, _, idx in plan:  # each question is about a fact inside its own buffer
        assert all(start <= i < start + n for i in idx)
    with pytest.raises(ValueError, match="must be in"):
        curve_plan(0, 10)


def test_pooled_recall_refuses_a_question_counted_twice():
    row = {"n": 1, "tokens": 10, "hits": 1, "total": 1, "nll": 0.5, "recall": 1.0}
    ok = pooled_recall([{**row, "position": "start", "facts": ["f1"]}, {**row, "position": "end", "facts": ["f2"]}])
    assert ok[0]["total"] == 2 and np.isclose(ok[0]["recall"], 1.0)
    with pytest.raises(ValueError, match="asked twice"):
        pooled_recall([{**row, "position": "start", "facts": ["f1"]}, {**row, "position": "end", "facts": ["f1"]}])


def test_retention_check_passages_are_held_out_from_training_text():
    import re

    from stmltm_nb.memory.facts import general_text, retention_passages
    from stmltm_nb.metrics.recall import check_passages

    passages = check_passages()

    def runs(text):
        w = re.findall(r"[a-z']+", text.lower())
        return {" ".join(w[i : i + 5]) for i in range(len(w) - 4)}

    seen = set().union(*map(runs, passages))
    assert len(passages) >= 10 and sum(len(p.split()) for p in passages) >= 1500  # ≥ 2,000 tokens (stored per run)
    assert not seen & runs(general_text()) and not seen & set().union(*map(runs, retention_passages()))


def test_cartridge_table_is_one_row_per_mode_with_both_question_kinds():
    from stmltm_nb.metrics.comparison import cartridge_table

    def row(mode, questions, v, seeds=()):
        return {"mode": mode, "questions": questions, "recall_cart": v, "recall_cart_lo": v - 0.1,
                "recall_cart_hi": v + 0.1, "recall_resid": 0.5, "recall_resid_lo": 0.4, "recall_resid_hi": 0.6,
                "frac_of_teacher_cart": v / 0.8, "seeds": list(seeds)}

    t = cartridge_table([row("LTM (cartridge)", "heldout", 0.7, (0.65, 0.75)), row("LTM (cartridge)", "train", 0.9),
                         row("no memory", "heldout", 0.0)])
    assert list(t["memory"]) == ["LTM (cartridge)", "no memory"]
    ltm = t.iloc[0]
    assert ltm["trained template"] == "0.90 [0.80, 1.00]" and ltm["held-out wordings"] == "0.70 [0.60, 0.80]"
    assert ltm["held-out, of teacher"] == f"{0.7 / 0.8:.0%}" and ltm["all facts, held-out, per seed"] == "0.65 / 0.75"
    assert t.iloc[1]["trained template"] == "not asked"
