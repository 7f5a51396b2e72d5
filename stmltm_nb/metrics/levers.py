"""A recipe lever against its baseline, question by question (numpy only, no torch).

A lever's run (``stmltm measure --split tune --seeds 0 --cartridges-only --set KEY=VALUE ...``) trains the recipe with
the lever and asks its cartridge the same questions as the baseline's run (the shipped recipe on the same split and
seeds): the same facts, wordings and residual notes. :func:`lever_gaps` pairs the two runs question by question and
gives each difference of recall (lever − baseline, a share of questions in [−1, 1]) a 95 % bootstrap interval that
resamples relations, then facts within them, the same draw for both runs
(:func:`~stmltm_nb.metrics.stats.cluster_bootstrap` of the per-question differences): pairing removes what the two
runs share (a hard fact is hard for both), so the interval is narrower than comparing the two recalls' own
intervals, and honest, since failures cluster by relation. A difference is "better" or "worse" only when its
interval excludes 0, else "not resolved".

Retention (ΔNLL of general text, nats/token) is stored per run as a row with its interval over passages, not per
passage, so its comparison is unpaired and conservative: "better" when the lever's interval lies wholly below the
baseline's, "worse" when wholly above, else "not resolved".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stmltm_nb.metrics.comparison import LTM, SERVED
from stmltm_nb.metrics.stats import cluster_bootstrap

# (memory, questions, facts) read for every lever: the cartridge alone on its own facts, and the served memory
# (cartridge + residual notes) on the cartridge's facts and on the notes' facts
PARTS: tuple[tuple[str, str, str], ...] = (
    (LTM, "heldout", "cart"), (LTM, "train", "cart"),
    (SERVED, "heldout", "cart"), (SERVED, "train", "cart"),
    (SERVED, "heldout", "resid"), (SERVED, "train", "resid"),
)
FACTS = {"cart": "cartridge facts", "resid": "residual notes"}
RETENTION = "ΔNLL (nats/token)"  # the ``facts`` of a retention row
# a short name per row of lever_gaps, for prose and for a lever's stated target
PART_KEYS = {(LTM, "heldout", FACTS["cart"]): "ltm_heldout", (LTM, "train", FACTS["cart"]): "ltm_train",
             (SERVED, "heldout", FACTS["cart"]): "served_heldout", (SERVED, "train", FACTS["cart"]): "served_train",
             (SERVED, "heldout", FACTS["resid"]): "notes_heldout", (SERVED, "train", FACTS["resid"]): "notes_train",
             (LTM, "general text", RETENTION): "dnll_ltm", (SERVED, "general text", RETENTION): "dnll_served"}
PLAN_FILE = "lever_plan.json"  # each lever's overrides, target part and reason, written before its run
SAME = ("model", "fast", "n_facts", "n_resid", "seeds")  # run fields two compared runs must share


BASELINE_FILE = "lever_tune_baseline.json"  # the shipped recipe's run; each lever's run is lever_tune_<name>.json


def read_lever_runs(folder: str | Path) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """The baseline run (``folder/lever_tune_baseline.json``, None when absent) and every lever run beside it
    (``lever_tune_<name>.json``), keyed by name in name order."""
    folder = Path(folder)
    base = folder / BASELINE_FILE
    runs = {p.stem.removeprefix("lever_tune_"): json.loads(p.read_text())
            for p in sorted(folder.glob("lever_tune_*.json")) if p.name != BASELINE_FILE}
    return (json.loads(base.read_text()) if base.is_file() else None), runs


def run_records(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every per-question record of a measured run (``run["evaluation"]``: one list per part, e.g. ``seed0``)."""
    return [r for part in run.get("evaluation", {}).values() for r in part]


def recipe_text(run: Mapping[str, Any]) -> str:
    """The run's recipe overrides as ``--set`` would take them ("standins=pool residual_max=8"), "shipped recipe"
    when it has none."""
    recipe = run.get("recipe") or {}
    return " ".join(f"{k}={v}" for k, v in sorted(recipe.items())) or "shipped recipe"


def _check_comparable(base: Mapping[str, Any], lever: Mapping[str, Any]) -> None:
    split_b, split_l = (base.get("split") or {}).get("name"), (lever.get("split") or {}).get("name")
    if split_b != split_l:
        raise ValueError(f"lever_gaps: the runs are on different splits ({split_b!r} vs {split_l!r}); a lever is "
                         "compared with the baseline of its own split")
    for key in SAME:
        if base.get(key) != lever.get(key):
            raise ValueError(f"lever_gaps: the runs differ in {key!r} ({base.get(key)!r} vs {lever.get(key)!r}); "
                             "compare runs of one protocol")


def _hits(records: Sequence[Mapping[str, Any]], mode: str, kind: str, role: str) -> dict[tuple, Mapping[str, Any]]:
    out: dict[tuple, Mapping[str, Any]] = {}
    for r in records:
        if r["mode"] == mode and r["kind"] == kind and r["role"] == role:
            key = (r["fact"], r.get("w", 0), r.get("seed"))
            if key in out:
                raise ValueError(f"lever_gaps: {mode} / {kind} question {key[1]} about {key[0]} (seed {key[2]}) is "
                                 "recorded twice")
            out[key] = r
    return out


def verdict(lo: float, hi: float) -> str:
    """"better", "worse" or "not resolved" for a difference of recall (lever − baseline) with its interval [lo, hi]."""
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    return "not resolved"


def _own_interval(run: Mapping[str, Any], mode: str, kind: str, role: str) -> tuple[Any, Any]:
    """A run's own 95 % interval (relations, then facts, resampled) of one recall part, from its comparison rows;
    (None, None) when the run holds no such row."""
    key = "recall_cart" if role == "cart" else "recall_resid"
    row = next((r for r in run.get("comparison", []) if (r["mode"], r["questions"]) == (mode, kind)), None)
    return (None, None) if row is None else (row.get(f"{key}_lo"), row.get(f"{key}_hi"))


def lever_gaps(base: Mapping[str, Any], lever: Mapping[str, Any], n_boot: int = 2000,
               seed: int = 0) -> list[dict[str, Any]]:
    """One row per part of :data:`PARTS` both runs asked, then one per cartridge retention row: ``memory``,
    ``questions`` (train | heldout | "general text"), ``facts``, ``base`` and ``lever`` (recall, or ΔNLL in nats/token
    for retention), ``delta`` (lever − base) with ``lo``/``hi`` (recall: paired, relations resampled; retention:
    None, the verdict reads the two runs' own intervals), each run's own interval ``base_lo`` … ``lever_hi`` (recall:
    from the run's comparison rows, None without them), ``verdict`` and ``n_questions``.
    Raises ValueError when the runs are not comparable (another split, model, size or seeds) or did not ask the
    same questions (the first question one run lacks is named)."""
    _check_comparable(base, lever)
    rb, rl = run_records(base), run_records(lever)
    rows: list[dict[str, Any]] = []
    for mode, kind, role in PARTS:
        a, b = _hits(rb, mode, kind, role), _hits(rl, mode, kind, role)
        if not a and not b:
            continue
        missing = sorted(set(a) ^ set(b), key=str)
        if missing:
            fact, w, s = missing[0]
            which = "the lever's run" if missing[0] in a else "the baseline"
            raise ValueError(f"lever_gaps: {which} did not ask {mode} / {kind} question {w} about {fact} (seed {s}); "
                             "the runs must ask the same questions")
        keys = sorted(a, key=str)
        diffs = [float(b[k]["hit"]) - float(a[k]["hit"]) for k in keys]
        d, lo, hi = cluster_bootstrap([a[k]["relation"] for k in keys], [a[k]["fact"] for k in keys], diffs,
                                      n_boot=n_boot, seed=seed)
        (base_lo, base_hi), (lever_lo, lever_hi) = (_own_interval(run, mode, kind, role) for run in (base, lever))
        rows.append({"memory": mode, "questions": kind, "facts": FACTS[role],
                     "base": float(np.mean([a[k]["hit"] for k in keys])),
                     "lever": float(np.mean([b[k]["hit"] for k in keys])),
                     "delta": d, "lo": lo, "hi": hi, "base_lo": base_lo, "base_hi": base_hi, "lever_lo": lever_lo,
                     "lever_hi": lever_hi, "verdict": verdict(lo, hi), "n_questions": len(keys)})
    ret_b = {r["mode"]: r for r in (base.get("retention") or {}).get("rows", [])}
    ret_l = {r["mode"]: r for r in (lever.get("retention") or {}).get("rows", [])}
    for mode in (LTM, SERVED):
        if mode not in ret_b or mode not in ret_l:
            continue
        x, y = ret_b[mode], ret_l[mode]
        v = ("better" if y["hi"] < x["lo"] else "worse" if y["lo"] > x["hi"] else "not resolved")
        rows.append({"memory": mode, "questions": "general text", "facts": RETENTION,
                     "base": x["delta_nll"], "lever": y["delta_nll"], "delta": y["delta_nll"] - x["delta_nll"],
                     "lo": None, "hi": None, "base_lo": x["lo"], "base_hi": x["hi"], "lever_lo": y["lo"],
                     "lever_hi": y["hi"], "verdict": v, "n_questions": None})
    return rows


def part_key(row: Mapping[str, Any]) -> str:
    """The short name of a :func:`lever_gaps` row (:data:`PART_KEYS`), e.g. "served_heldout"."""
    return PART_KEYS[(row["memory"], row["questions"], row["facts"])]


def lever_decision(rows: Sequence[Mapping[str, Any]], target: str) -> dict[str, Any]:
    """The rule stated before a lever runs, applied to its :func:`lever_gaps` rows: "keep" when its ``target`` part
    (a :data:`PART_KEYS` name) is "better" and no part is "worse"; "trade" (not adopted as it is) when the target is
    better and some part worse; "drop" when the target is not better. Returns ``decision``, ``target``, its
    ``verdict`` and the parts ``worse`` and ``better``."""
    by = {part_key(r): r for r in rows}
    if target not in by:
        raise ValueError(f"lever_decision: the target {target!r} was not measured (parts: {', '.join(by)})")
    worse = [k for k, r in by.items() if r["verdict"] == "worse"]
    better = [k for k, r in by.items() if r["verdict"] == "better"]
    v = by[target]["verdict"]
    decision = "drop" if v != "better" else ("trade" if worse else "keep")
    return {"decision": decision, "target": target, "verdict": v, "worse": worse, "better": better}


def read_lever_plan(folder: str | Path) -> dict[str, dict[str, Any]]:
    """``folder/lever_plan.json``: per lever name its ``set`` (overrides), ``target`` (a :data:`PART_KEYS` name),
    ``why``, ``stated`` (when the target was written down, before the run) and optionally ``builds_on`` (the lever
    it adds to, also compared with it); ``{}`` when absent. A target that is no part name, or a ``builds_on`` that
    names no lever of the plan, raises ValueError."""
    path = Path(folder) / PLAN_FILE
    plan = json.loads(path.read_text()) if path.is_file() else {}
    for name, entry in plan.items():
        if entry.get("target") not in PART_KEYS.values():
            raise ValueError(f"{path}: lever {name!r} has target {entry.get('target')!r}; one of "
                             f"{', '.join(PART_KEYS.values())}")
        if "builds_on" in entry and entry["builds_on"] not in plan:
            raise ValueError(f"{path}: lever {name!r} builds on {entry['builds_on']!r}, which the plan does not hold")
    return plan


def lever_table(base: Mapping[str, Any], levers: Mapping[str, Mapping[str, Any]], n_boot: int = 2000):
    """A pandas DataFrame of :func:`lever_gaps` for each named lever run against ``base``: one row per (lever,
    memory, questions, facts), the difference as "+0.12 [+0.03, +0.22]" text beside its verdict."""
    import pandas as pd

    out = []
    for name, run in levers.items():
        for r in lever_gaps(base, run, n_boot=n_boot):
            if r["lo"] is None:
                diff = (f"{r['delta']:+.3f} (base [{r['base_lo']:+.3f}, {r['base_hi']:+.3f}], "
                        f"lever [{r['lever_lo']:+.3f}, {r['lever_hi']:+.3f}])")
                base_v, lever_v = f"{r['base']:+.3f}", f"{r['lever']:+.3f}"
            else:
                diff = f"{r['delta']:+.2f} [{r['lo']:+.2f}, {r['hi']:+.2f}]"
                base_v, lever_v = f"{r['base']:.2f}", f"{r['lever']:.2f}"
            out.append({"lever": name, "memory": r["memory"], "questions": r["questions"], "facts": r["facts"],
                        "baseline": base_v, "lever value": lever_v, "lever − baseline": diff,
                        "verdict": r["verdict"]})
    return pd.DataFrame(out)
