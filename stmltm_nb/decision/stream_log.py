"""Reading a controller's event log (``events.jsonl``, the shipped ``data/controller_events.jsonl``): one row per
candidate and a summary of the stream, for notebook 08 and the README (no torch).

Units: recall as fractions, NLL in nats/token, seconds, items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stmltm_nb.io import read_jsonl


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """The events of a JSONL log, in order (a blank line is skipped)."""
    return read_jsonl(path)


def candidates(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per candidate: the ``consolidate.start`` it came from and its ``commit`` or ``rollback`` (a rollback
    the user requested is not a candidate; one rejected as "absorbed nothing" before training is). Rows: outcome, reason, mode, new (items trained on),
    absorbed (items that passed the held-out check), q_cart (held-out recall of the new items), regression recall
    before and with the candidate served both ways, general-text NLL of no memory / LTM / LTM + residual STM, c_upd_s."""
    rows, start = [], None
    for e in events:
        if e["event"] == "consolidate.start":
            start = e
        elif e["event"] in ("commit", "rollback") and e.get("reason") != "requested":
            c = e.get("checks") or {}
            rows.append({
                "outcome": e["event"], "reason": e.get("reason") if e["event"] == "rollback" else None,
                "mode": (start or {}).get("mode", e.get("mode")), "new": len((start or {}).get("new_items", [])),
                "replay": (start or {}).get("replay"), "absorbed": len(c.get("holdout_passed", [])),
                "q_cart": c.get("q_cart"), "regression_old": c.get("regression_old"),
                "regression_ltm": c.get("regression_ltm"), "regression_served": c.get("regression_served"),
                "nll_base": c.get("retention_base_nll"), "nll_ltm": c.get("retention_ltm_nll"),
                "nll_served": c.get("retention_served_nll"), "c_upd_s": e.get("c_upd_s"),
            })
            start = None
    return rows


def stream_summary(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The last ``summary`` event's counts, the candidates, the contradictions served at the end, the n of each
    decision to consolidate, the G2 threshold τ the run used (where G2 was measured; None if never) and its wall
    time (minutes, first to last event)."""
    summary = next((dict(e) for e in reversed(events) if e["event"] == "summary"), {})
    contra = next((e["served"] for e in reversed(events) if e["event"] == "contradictions"), [])
    decisions = [e for e in events if e["event"] == "decision"]
    taus = {g["threshold"] for e in decisions if e.get("snr_measurement") for g in e.get("gates", [])
            if g.get("name") == "G2 SNR"}  # where G2 was measured (older logs show the default τ elsewhere)
    times = [e["time"] for e in events if "time" in e]
    return {**summary, "candidates": candidates(events), "contradictions_served": contra,
            "decisions": len(decisions), "go_at_n": [e["n"] for e in decisions if e["consolidate"]],
            "tau": max(taus) if taus else None,
            "minutes": (max(times) - min(times)) / 60 if times else None}
