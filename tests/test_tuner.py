import math

import pytest

from stmltm_nb.apps.tuner import SLIDERS, make_tuner


@pytest.fixture()
def tuner():
    return make_tuner(None)


def test_moving_a_slider_changes_decision_and_figure(tuner):
    s = tuner.sliders
    s["Q"].value = 1.0  # one future query: an update cannot pay
    assert tuner.last is not None and not tuner.last.consolidate
    assert "WAIT" in tuner.decision.value and "inequality" in tuner.decision.value
    y_before = list(tuner.fig.data[0].y)
    z_before = tuner.fig.data[3].z.copy()
    s["Q"].value = 1e5
    assert tuner.last.consolidate and "CONSOLIDATE" in tuner.decision.value
    assert list(tuner.fig.data[0].y) != y_before  # Q·A(n) curve moved
    s["c_upd"].value = 1e5
    assert (tuner.fig.data[3].z != z_before).any() or not tuner.last.consolidate


def test_the_plot_is_the_output_widgets_state_never_captured_output(tuner):
    """The figure is set as the Output widget's ``outputs`` (Plotly JSON, every trace), not captured with
    ``with out:`` (which leaves ``outputs`` empty without a kernel): Voila 0.5 stalled now and then on captured output
    that its executor synced back to the kernel (voila#1428; in one loop here 2 pages of 6 stalled before, 0 of 36
    after). The page itself is checked in Chromium by tests/test_voila_browser.py."""
    def plotted():
        (out,) = tuner.out.outputs
        assert out["output_type"] == "display_data"
        return out["data"]["application/vnd.plotly.v1+json"]["data"]

    before = plotted()
    assert len(before) == len(tuner.fig.data) == 5
    tuner.sliders["Q"].value = 1e5
    after = plotted()
    assert after[0]["y"] != before[0]["y"] and after[2]["y"] != before[2]["y"]  # Q·A(n) curve and the "now" point


def test_blocking_gate_is_named(tuner):
    tuner.sliders["Q"].value = 1e5
    tuner.sliders["snr"].value = 0.5
    tuner.sliders["tau"].value = 3.0
    assert not tuner.last.consolidate and "G2 SNR" in tuner.decision.value


def test_region_is_monotone_in_Q(tuner):
    z = tuner.fig.data[3].z  # rows: Q ascending
    for col in range(z.shape[1]):
        column = z[:, col]
        assert all(b >= a for a, b in zip(column, column[1:]))


def test_bad_values_show_an_error_not_a_crash(tuner):
    tuner.sliders["n"].value = 10
    tuner.update()
    x = tuner.inputs(Q=math.nan)
    from stmltm_nb.decision.switching import SwitchingInputError, decide

    with pytest.raises(SwitchingInputError):
        decide(x)
    # the widget path: a NaN reaching update() is reported in the panel
    orig = tuner.inputs
    tuner.inputs = lambda **kw: orig(Q=math.nan)
    tuner.update()
    assert "Invalid input" in tuner.decision.value and tuner.last is None


def test_presets_from_measured_curves():
    from curves_v2 import v2_curves

    t = make_tuner(v2_curves())
    assert len(t.presets) == 2
    for name in t.presets:
        t.preset.value = name
        assert t.last is not None
    assert set(t.values()) == set(SLIDERS)


def test_the_tuner_shows_served_recall_retention_and_the_retrieval_arm():
    from curves_v2 import v2_curves

    t = make_tuner(v2_curves())
    assert t.sliders["q_cart"].value == 0.8  # the served memory, not the cartridge alone (0.6)
    text = t.decision.value
    assert "served (cartridge + residual STM) 0.80 [0.70, 0.88]" in text and "cartridge alone 0.60" in text
    assert "retention ΔNLL" in text and "served +0.030 [+0.010, +0.050]" in text
    assert set(t.last.arms) == {"stm", "retrieval", "cartridge"}
    t.sliders["Q"].value = 1e2
    assert t.last.arm == "retrieval" and "SERVE RETRIEVAL" in t.decision.value
    t.sliders["dnll"].value = 0.2  # the served ΔNLL lower bound above the tolerance: G6 blocks the cartridge
    t.sliders["Q"].value = 1e6
    assert not t.last.consolidate and "G6 retention" in t.decision.value
    t.sliders["dnll"].value = 0.0
    t.sliders["q_ret"].value = 0.3  # retrieval resolved worse than the served cartridge
    assert t.last.arm == "cartridge" and t.last.consolidate


def test_built_in_defaults_list_the_unmeasured_gates(tuner):
    assert "Not evaluated (not measured)" in tuner.decision.value and "G6 retention" in tuner.decision.value
    assert set(tuner.last.arms) == {"stm", "cartridge"}  # no retrieval measured: two arms


def test_a_curves_path_is_read_and_checked(tmp_path):
    import json

    from curves_v2 import v2_curves

    from stmltm_nb.decision.curves_record import CurvesError

    p = tmp_path / "curves.json"
    p.write_text(json.dumps(v2_curves()))
    assert make_tuner(str(p)).curves is not None
    c = v2_curves()
    c["recall"]["best_fit"] = "cubic"
    p.write_text(json.dumps(c))
    with pytest.raises(CurvesError, match="recall.best_fit"):
        make_tuner(p)
    old = v2_curves()
    del old["schema_version"]
    p.write_text(json.dumps(old))
    with pytest.raises(CurvesError, match="schema_version missing.*stmltm measure --split report"):
        make_tuner(p)
