"""Reading a controller's event log: one row per trained candidate (a requested rollback is not one), the summary
counts, the G2 threshold where G2 was measured, and the shipped recording's rows are consistent with its summary."""

import json

from stmltm_nb.decision.stream_log import candidates, read_events, stream_summary


def _checks(q, nll):
    return {"holdout_passed": ["a"] * int(q * 4), "q_cart": q, "retention_base_nll": 2.0, "retention_ltm_nll": nll,
            "retention_served_nll": nll - 0.1, "regression_old": 1.0, "regression_ltm": 1.0, "regression_served": 0.5}


EVENTS = [
    {"event": "decision", "time": 0.0, "n": 8, "consolidate": False, "snr_measurement": None,
     "gates": [{"name": "G2 SNR", "threshold": 1.0}]},
    {"event": "decision", "time": 60.0, "n": 16, "consolidate": True, "snr_measurement": {"snr_m": 1.0},
     "gates": [{"name": "G2 SNR", "threshold": 0.5}]},
    {"event": "consolidate.start", "time": 61.0, "new_items": ["a", "b", "c", "d"], "replay": 0, "mode": "full"},
    {"event": "rollback", "time": 100.0, "reason": "retention", "checks": _checks(0.5, 2.4), "c_upd_s": 39.0},
    {"event": "consolidate.start", "time": 110.0, "new_items": ["a", "b", "c", "d", "e"], "replay": 0, "mode": "full"},
    {"event": "commit", "time": 150.0, "reason": "passed every check", "checks": _checks(0.75, 2.1), "c_upd_s": 40.0},
    {"event": "rollback", "time": 160.0, "reason": "requested", "frm": 1, "to": 0},
    {"event": "contradictions", "time": 170.0, "served": [{"id": "c1", "new_value": True}]},
    {"event": "summary", "time": 180.0, "items": 5, "commits": 1, "rollbacks": 1, "lost": 0},
]


def test_candidates_pair_each_start_with_its_outcome():
    rows = candidates(EVENTS)
    assert [r["outcome"] for r in rows] == ["rollback", "commit"]
    assert rows[0]["reason"] == "retention" and rows[1]["reason"] is None
    assert [r["new"] for r in rows] == [4, 5] and [r["absorbed"] for r in rows] == [2, 3]
    assert rows[1]["nll_ltm"] == 2.1 and rows[1]["nll_served"] == 2.0 and rows[1]["mode"] == "full"


def test_summary_counts_tau_and_minutes():
    s = stream_summary(EVENTS)
    assert s["commits"] == 1 and s["items"] == 5 and s["go_at_n"] == [16] and s["decisions"] == 2
    assert s["tau"] == 0.5  # where G2 was measured, not the default shown before
    assert s["minutes"] == 3.0 and s["contradictions_served"] == [{"id": "c1", "new_value": True}]


def test_the_shipped_recording_agrees_with_its_summary(tmp_path):
    from stmltm_nb.shipped import data_dir

    log = read_events(data_dir() / "controller_events.jsonl")
    s = stream_summary(log)
    assert s["commits"] == sum(r["outcome"] == "commit" for r in s["candidates"])
    assert s["rollbacks"] == sum(r["outcome"] == "rollback" for r in s["candidates"])
    assert s["lost"] == 0 and s["versions"] == s["commits"]
    from stmltm_nb.decision.controller_config import ControllerConfig
    from stmltm_nb.memory.facts import load_facts

    by_id = {f.id: f for f in load_facts(contradictions=True)}
    sup = [e for e in log if e["event"] == "supersede"]  # each newer value arrived after the value it replaces
    assert sup and all(by_id[e["item"]].supersedes for e in sup)
    assert all(c["new"] <= ControllerConfig.update_max_new for c in s["candidates"] if c["mode"] == "update")
    p = tmp_path / "e.jsonl"
    p.write_text("\n".join(json.dumps(e) for e in EVENTS) + "\n\n")
    assert read_events(p) == EVENTS
