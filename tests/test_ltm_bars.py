"""The issue-#13 bars of a served memory (metrics.ltm_bars): each bar fails on its own, at its edge."""

import pytest

from stmltm_nb.metrics.ltm_bars import comparison_misses, ltm_bar_misses

PASS = dict(ltm_train=0.95, ltm_heldout=0.75, both_cart=0.90, both_resid=0.75, stm_resid=0.75, dnll_ltm=0.01,
            dnll_both=0.05)


def test_a_memory_meeting_every_bar_misses_none():
    assert ltm_bar_misses(**PASS) == []


@pytest.mark.parametrize("field, value, phrase", [
    ("ltm_train", 0.89, "LTM trained 0.89"), ("ltm_heldout", 0.69, "LTM held-out 0.69"),
    ("both_cart", 0.84, "cartridge facts 0.84"), ("dnll_ltm", 0.06, "ΔNLL LTM +0.06"),
    ("dnll_both", 0.051, "ΔNLL LTM + residual STM +0.05"),
])
def test_each_bar_is_missed_alone(field, value, phrase):
    misses = ltm_bar_misses(**{**PASS, field: value})
    assert len(misses) == 1 and phrase in misses[0]


def test_residual_facts_need_ninety_percent_of_stm_alone_and_half_absolute():
    assert ltm_bar_misses(**{**PASS, "both_resid": 0.675, "stm_resid": 0.75}) == []  # exactly 90 %
    assert len(ltm_bar_misses(**{**PASS, "both_resid": 0.67, "stm_resid": 0.75})) == 1
    assert len(ltm_bar_misses(**{**PASS, "both_resid": 0.45, "stm_resid": 0.4})) == 1  # above 90 %, below 0.5


def test_a_comparison_table_is_read_by_mode_and_questions():
    row = lambda **kw: kw  # noqa: E731
    table = {
        "LTM (cartridge)": {"train": row(recall_cart=0.95), "heldout": row(recall_cart=0.6)},
        "LTM + residual STM": {"train": row(recall_cart=0.9, recall_resid=0.75)},
        "STM (residual items only)": {"train": row(recall=0.75)},
    }
    retention = {"LTM (cartridge)": row(delta_nll=0.1), "LTM + residual STM": row(delta_nll=0.02)}
    misses = comparison_misses(table, retention)
    assert [m.split(" 0.")[0].split(" +")[0] for m in misses] == ["LTM held-out", "ΔNLL LTM"]


def test_unmeasured_values_never_pass_silently():
    nan = float("nan")
    for field in ("ltm_train", "ltm_heldout", "both_cart", "both_resid", "dnll_ltm", "dnll_both"):
        assert len(ltm_bar_misses(**{**PASS, field: nan})) == 1, field  # an unmeasured value is a miss
    assert ltm_bar_misses(**{**PASS, "stm_resid": nan, "both_resid": 0.5}) == []  # the floor alone applies


def test_the_rendered_thresholds_are_the_ones_judged():
    from stmltm_nb.metrics.ltm_bars import thresholds

    t = thresholds()
    at = dict(PASS, ltm_train=t["LTM trained"], ltm_heldout=t["LTM held-out"],
              both_cart=t["LTM + residual STM, cartridge facts"], dnll_ltm=t["max ΔNLL"], dnll_both=t["max ΔNLL"],
              both_resid=t["residual floor"], stm_resid=0.0)
    assert ltm_bar_misses(**at) == []  # each bar met exactly
    assert len(ltm_bar_misses(**{**at, "ltm_train": t["LTM trained"] - 1e-9})) == 1


def _curves(ltm_train=0.95, ltm_heldout=0.75, both_cart=0.90, both_resid=0.75, stm_resid=0.75, nll=(3.0, 3.01, 3.05)):
    def row(mode, questions, **kw):
        return {"mode": mode, "questions": questions, **kw}
    return {"split": {"name": "report"}, "consolidation": {"config": {"retention_frac": 0.25, "retention_corpus": "prose"}},
            "comparison": [row("LTM (cartridge)", "train", recall_cart=ltm_train),
                           row("LTM (cartridge)", "heldout", recall_cart=ltm_heldout),
                           row("LTM + residual STM", "train", recall_cart=both_cart, recall_resid=both_resid),
                           row("STM (residual items only)", "train", recall=stm_resid)],
            "retention": {"rows": [{"mode": m, "nll": v} for m, v in
                                   zip(("no memory", "LTM (cartridge)", "LTM + residual STM"), nll)]}}


def test_recipe_rows_put_the_measured_defaults_first_and_judge_every_run():
    from stmltm_nb.metrics.ltm_bars import RECIPE_BARS, recipe_rows

    run = {"name": "mine", "split": "tune", "config": {"backend": "lora", "practice_frac": 0.125},
           "ltm_train": 0.5, "ltm_heldout": 0.75, "both_cart_train": 0.9, "both_resid_train": 0.75,
           "stm_resid_train": 0.75, "nll_base": 3.0, "nll_ltm": 3.2, "nll_both": 3.0}
    rows = recipe_rows(_curves(), [run])
    assert [r["run"] for r in rows] == ["defaults (`stmltm measure`)", "mine"]
    assert rows[0]["split"] == "report" and rows[0]["misses"] == [] and rows[0]["retention"] == "0.25 prose"
    assert rows[0]["ΔNLL LTM+res"] == pytest.approx(0.05)
    assert rows[1]["backend"] == "lora" and rows[1]["residual_prob"] == 0.25  # a key the run omits: the old default
    assert [m.split(" ")[0:2] for m in rows[1]["misses"]] == [["LTM", "trained"], ["ΔNLL", "LTM"]]
    assert all(col in rows[1] for col, _, _ in RECIPE_BARS)  # every panel of the dot plot has its column


def test_recipe_dot_plot_fills_a_dot_exactly_where_the_bar_is_met():
    from stmltm_nb.apps.viz import fig_recipe_bars
    from stmltm_nb.metrics.ltm_bars import RECIPE_BARS, recipe_rows

    rows = recipe_rows(_curves(ltm_train=0.5, nll=(3.0, 3.2, 3.0)), [])
    fig = fig_recipe_bars(rows)
    assert len(fig.data) == len(RECIPE_BARS)
    symbols = {tr.hovertemplate.split(" = ")[0].split("<br>")[1]: tr.marker.symbol[0] for tr in fig.data}
    assert symbols["LTM trained"] == "circle-open" and symbols["ΔNLL LTM"] == "circle-open"
    assert symbols["LTM held-out"] == "circle" and symbols["ΔNLL LTM+res"] == "circle"


def test_the_residual_facts_dot_is_filled_only_where_the_bar_of_the_verdict_is_met():
    from stmltm_nb.metrics.ltm_bars import bar_met, recipe_rows

    above_floor_below_share = recipe_rows(_curves(both_resid=0.6, stm_resid=0.75), [])[0]  # 0.6 < 0.9 × 0.75
    assert not bar_met(above_floor_below_share, "LTM+res: resid facts")
    assert any("residual facts" in m for m in above_floor_below_share["misses"])
    assert bar_met(recipe_rows(_curves(both_resid=0.7, stm_resid=0.75), [])[0], "LTM+res: resid facts")
