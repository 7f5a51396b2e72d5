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
