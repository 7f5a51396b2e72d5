"""The verdict over (n, Q) that notebooks 00, 06 and 09 show: each cell is the rule's own decision on the measured
curves, the n axis stays inside the measured range, a what-if map must say what it changed, and the figure has
one panel per map. Torch-free, on the shipped curves."""

from __future__ import annotations

import numpy as np
import pytest

from stmltm_nb.decision.curves import load_curves, measured_inputs, priors
from stmltm_nb.decision.switching import VERDICTS, decide, verdict
from stmltm_nb.decision.verdict_map import (
    VERDICT_LAMS,
    WHAT_IF_LABEL,
    course_maps,
    measured_n_max,
    summary_lines,
    verdict_map,
)

CURVES = load_curves()
NS = (1, 4, 16, 64, measured_n_max(CURVES))
QS = (1.0, 100.0, 1e4, 1e6)
PERFECT = {"q_cart": 1.0, "q_cart_lo": 0.95, "q_cart_hi": 1.0, "dnll": 0.0, "dnll_lo": None, "dnll_hi": None}


def test_each_cell_is_the_rules_own_verdict():
    for regime in ("cached", "stateless"):
        m = verdict_map(CURVES, 5.0, regime, NS, QS)
        for i, Q in enumerate(QS):
            for j, n in enumerate(NS):
                d = decide(measured_inputs(CURVES, n, Q, 5.0, regime=regime))
                assert VERDICTS[m.codes[i][j]] == verdict(d.consolidate, d.arm) == m.at(n, Q)
                assert m.blocked[i][j] == tuple(d.blocked_by) == m.blocked_at(n, Q)


def test_the_regime_changes_the_stm_cost_the_map_is_priced_with():
    cached = measured_inputs(CURVES, 64, 100.0, 5.0, regime="cached")
    stateless = measured_inputs(CURVES, 64, 100.0, 5.0, regime="stateless")
    assert stateless.cost(64) > cached.cost(64)
    with pytest.raises(ValueError, match="regime"):
        measured_inputs(CURVES, 64, 100.0, 5.0, regime="warm")


def test_the_n_axis_stays_inside_the_measured_range():
    n_max = measured_n_max(CURVES)
    assert n_max == max(r["n"] for r in CURVES["recall"]["pooled"])
    assert max(verdict_map(CURVES, Qs=(10.0,)).ns) == n_max
    with pytest.raises(ValueError, match="measured range"):
        verdict_map(CURVES, ns=(1, n_max + 1), Qs=(10.0,))
    with pytest.raises(ValueError, match="recall"):
        measured_n_max({"recall": {"pooled": []}})


def test_a_what_if_map_says_what_it_changed_and_names_real_fields():
    with pytest.raises(ValueError, match="label"):
        verdict_map(CURVES, ns=NS, Qs=QS, what_if=PERFECT)
    with pytest.raises(ValueError, match="q_kart"):
        verdict_map(CURVES, ns=NS, Qs=QS, what_if={"q_kart": 1.0}, label="typo")


def test_a_perfect_cartridge_consolidates_where_queries_repay_it_and_more_queries_never_undo_that():
    m = verdict_map(CURVES, 50.0, "cached", NS, QS, what_if=PERFECT, label="perfect cartridge")
    codes = np.asarray(m.codes)
    cons = codes == VERDICTS.index("CONSOLIDATE")
    assert cons.any() and m.share("CONSOLIDATE") > 0
    assert not cons[0].any() or cons[-1].all()  # Q = 1 repays no training unless everything does
    for j in range(len(NS)):  # consolidation, once it pays at Q, pays at every larger Q
        col = cons[:, j]
        if col.any():
            assert col[int(np.argmax(col)):].all(), (NS[j], col)


def test_the_course_maps_and_their_summary():
    maps = course_maps(CURVES, ns=NS, Qs=QS)
    assert [(m.regime, m.lam) for m in maps[:6]] == [(r, lam) for r in ("cached", "stateless") for lam in VERDICT_LAMS]
    what_if = maps[6:]
    assert [m.label for m in what_if] == [WHAT_IF_LABEL] * len(VERDICT_LAMS)
    alone = priors(CURVES).q_ltm_alone
    probe = verdict_map(CURVES, VERDICT_LAMS[-1], "cached", NS, QS, label="alone", what_if={
        "q_cart": alone.value, "q_cart_lo": alone.lo, "q_cart_hi": alone.hi, "dnll": 0.0, "dnll_lo": None,
        "dnll_hi": None})
    assert probe.codes == what_if[-1].codes
    lines = summary_lines(maps)
    assert len(lines) == len(maps)
    for m, line in zip(maps, lines):
        assert abs(sum(m.share(w) for w in VERDICTS) - 1.0) < 1e-9
        assert f"λ = {m.lam:g} s" in line and m.label in line


def test_the_figure_has_one_panel_per_map_and_a_legend_per_verdict():
    from stmltm_nb.apps.viz import fig_verdict

    maps = course_maps(CURVES, ns=NS, Qs=QS)
    fig = fig_verdict(maps, subtitle="test")
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == len(maps)
    assert [t.name for t in fig.data if t.type == "scatter"] == [w.lower() for w in VERDICTS]
    assert all(t.z is not None and len(t.z) == len(QS) and len(t.z[0]) == len(NS) for t in heat)
    assert "test" in fig.layout.title.text


def test_the_notebooks_verdict_figure_at_fast_size():
    from stmltm_nb.apps.viz import FAST_VERDICT_GRID, verdict_figure

    fig, lines = verdict_figure(CURVES, fast=True)
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(lines) == len(heat) == 9
    assert list(heat[0].x) == [n for n in FAST_VERDICT_GRID["ns"] if n <= measured_n_max(CURVES)]
    p = priors(CURVES)
    assert f"{p.q_cart:.2f}" in fig.layout.title.text and f"{p.q_ltm_alone.value:.2f}" in fig.layout.title.text
