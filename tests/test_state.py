import json

import pytest

from stmltm_nb.decision.state import ControllerState, StateError


def _roundtrip(st: ControllerState) -> ControllerState:
    back = ControllerState.from_json(json.loads(json.dumps(st.to_json())))
    assert back.to_json() == st.to_json()
    return back


def test_three_rollbacks_in_a_row_then_a_commit():
    st = ControllerState()
    for v, ids in ((1, ["a"]), (2, ["b", "c"]), (3, ["d"])):
        st = _roundtrip(st.commit(v, ids, measured={"c_upd_s": 10.0 * v, "q_cart": 0.5}))
    assert st.absorbed_ids() == {"a", "b", "c", "d"} and st.lineage() == [3, 2, 1]
    for to, live in ((2, {"a", "b", "c"}), (1, {"a"}), (0, set())):
        st = _roundtrip(st.rollback())  # the old bug: a rollback record has no "parent"
        assert st.version == to and st.absorbed_ids() == live
    with pytest.raises(StateError, match="nothing to roll back"):
        st.rollback()
    assert st.next_version() == 4  # committed folders v1..v3 are never reused
    st = _roundtrip(st.commit(4, ["e"]))
    assert st.parents[4] == 0 and st.absorbed_ids() == {"e"} and st.measured["c_upd_s"] == 30.0


def test_a_rejected_candidate_keeps_the_version_and_records_why():
    st = ControllerState().commit(1, ["a"])
    st = _roundtrip(st.reject_candidate(2, "retention", retry_at_n=12, measured={"c_upd_s": 7.0, "q_cart": None}))
    assert st.version == 1 and st.retry_at_n == 12 and st.to_json()["retry_at_n"] == 12
    assert st.measured == {"c_upd_s": 7.0} and st.history[-1]["reason"] == "retention"
    st = st.rollback()
    assert st.version == 0 and st.retry_at_n == 12
    st = st.commit(st.next_version(), ["a", "b"])
    assert st.version == 2 and st.retry_at_n == 0 and "retry_at_n" not in st.to_json()
    with pytest.raises(StateError, match="at least one"):
        st.commit(3, [])
    with pytest.raises(StateError, match="already"):
        st.commit(2, ["x"])


def test_reads_the_old_state_format():
    old = {"version": 2, "absorbed": {"a": 1, "b": 2},
           "history": [{"version": 1, "parent": 0, "absorbed": ["a"], "kept_in_stm": [], "time": 1.0},
                       {"version": 2, "parent": 1, "absorbed": ["b"], "kept_in_stm": [], "time": 2.0}],
           "measured": {"c_upd_s": 3.0, "q_cart": 1.0, "r_cart_s": 0.01}, "retry_at_n": 8}
    st = ControllerState.from_json(old)
    assert st.parents == {1: 0, 2: 1} and st.retry_at_n == 8 and st.absorbed_ids() == {"a", "b"}
    assert st.rollback().rollback().version == 0
    assert ControllerState.from_json({"version": 0, "absorbed": {}, "history": [], "measured": {}}) == ControllerState()


@pytest.mark.parametrize("bad,match", [
    ([], "JSON object"),
    ({"version": 0, "absorbed": {}}, "lacks"),
    ({"version": 3, "absorbed": {}, "history": []}, "never committed"),
    ({"version": 0, "absorbed": {"a": 1}, "history": []}, "uncommitted"),
    ({"version": 1, "parents": {"1": 5}, "absorbed": {}, "history": []}, "invalid parent"),
    ({"version": "x", "absorbed": {}, "history": []}, "integer"),
    ({"version": 0, "absorbed": {}, "history": [], "measured": {"q_cart": -1}}, "finite number"),
    ({"version": 0, "absorbed": {}, "history": [], "measured": {"speed": 1}}, "unknown"),
    ({"version": 0, "absorbed": {}, "history": [], "retry_at_n": -2}, "retry_at_n"),
])
def test_bad_records_are_refused(bad, match):
    with pytest.raises(StateError, match=match):
        ControllerState.from_json(bad)
