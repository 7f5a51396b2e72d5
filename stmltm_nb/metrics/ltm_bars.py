"""The bars a served memory must meet after a consolidation (issue #13), in one place: notebook 03's dot plot,
notebook 10's verdicts, the README's bar table and its "bars still missed" line are computed from here. Plain Python
(no torch). Recall is a share of questions answered in [0, 1]; ΔNLL is the general-text NLL with the memory minus without it, nats/token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LTM_RECALL_BARS = {"LTM trained": 0.90, "LTM held-out": 0.70, "LTM + residual STM, cartridge facts": 0.85}
RESIDUAL_SHARE = 0.90  # residual facts next to the cartridge: at least this share of their STM-only recall ...
RESIDUAL_FLOOR = 0.50  # ... and at least this much absolute
MAX_DNLL = 0.05  # nats/token over no memory, for LTM and for LTM + residual STM


def thresholds() -> dict[str, float]:
    """Every bar by name, for rendered prose: the recall bars (:data:`LTM_RECALL_BARS`), then "residual share",
    "residual floor" and "max ΔNLL" (nats/token)."""
    return {**LTM_RECALL_BARS, "residual share": RESIDUAL_SHARE, "residual floor": RESIDUAL_FLOOR,
            "max ΔNLL": MAX_DNLL}


def residual_bar(stm_resid: float) -> float:
    """The recall the residual facts need next to the cartridge: :data:`RESIDUAL_FLOOR`, and at least
    :data:`RESIDUAL_SHARE` of their recall in STM alone when that is measured (NaN: the floor alone)."""
    return max(RESIDUAL_FLOOR, RESIDUAL_SHARE * stm_resid)  # max keeps the floor against a NaN


def ltm_bar_misses(ltm_train: float, ltm_heldout: float, both_cart: float, both_resid: float, stm_resid: float,
                   dnll_ltm: float, dnll_both: float) -> list[str]:
    """The bars these measurements miss, each as a short phrase with the measured value (empty: every bar met).
    ``stm_resid`` is the residual items' recall in STM without a cartridge (same items, same questions); when it is
    NaN (not measured) the residual bar is the absolute floor alone."""
    misses = [f"{name} {v:.2f} < {bar:.2f}" for (name, bar), v in zip(LTM_RECALL_BARS.items(),
                                                                   (ltm_train, ltm_heldout, both_cart)) if not v >= bar]
    if not both_resid >= residual_bar(stm_resid):  # a NaN recall is a miss
        misses.append(f"residual facts {both_resid:.2f} vs {stm_resid:.2f} in STM alone")
    misses += [f"ΔNLL {name} {v:+.2f} nats/token > +{MAX_DNLL:.2f}" for name, v in
               (("LTM", dnll_ltm), ("LTM + residual STM", dnll_both)) if not v <= MAX_DNLL]
    return misses


def comparison_misses(comparison: Mapping[str, Mapping[str, Mapping[str, Any]]],
                      retention: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """:func:`ltm_bar_misses` of a measured comparison table, as ``comparison[mode][questions]`` rows
    (``questions``: "train", "heldout"; the table of ``stmltm measure``), and its retention rows by mode (ΔNLL over
    no memory on the check passages, nats/token: ``retention[mode]["delta_nll"]``)."""
    ltm, both = comparison["LTM (cartridge)"], comparison["LTM + residual STM"]
    return ltm_bar_misses(ltm["train"]["recall_cart"], ltm["heldout"]["recall_cart"], both["train"]["recall_cart"],
                          both["train"]["recall_resid"], comparison["STM (residual items only)"]["train"]["recall"],
                          retention["LTM (cartridge)"]["delta_nll"], retention["LTM + residual STM"]["delta_nll"])


# The recipe runs against the bars: one row per run, the columns of notebook 03's dot plot and the appendix's table.
# (column, bar, "≥" or "≤"): recall columns are shares of questions, ΔNLL columns nats/token over no memory.
RECIPE_BARS = (("LTM trained", LTM_RECALL_BARS["LTM trained"], "≥"),
               ("LTM held-out", LTM_RECALL_BARS["LTM held-out"], "≥"),
               ("LTM+res: cart facts", LTM_RECALL_BARS["LTM + residual STM, cartridge facts"], "≥"),
               ("LTM+res: resid facts", RESIDUAL_FLOOR, "≥"),
               ("ΔNLL LTM", MAX_DNLL, "≤"),
               ("ΔNLL LTM+res", MAX_DNLL, "≤"))


NOT_RECORDED = "not recorded (the prefix)"  # a record without a backend predates the LoRA backend


def bar_met(row: Mapping[str, Any], column: str) -> bool:
    """Whether a :func:`recipe_rows` row meets the bar of one :data:`RECIPE_BARS` column (the residual facts' bar
    is :func:`residual_bar`, as in :func:`ltm_bar_misses`)."""
    bar, op = next((b, o) for c, b, o in RECIPE_BARS if c == column)
    if column == "LTM+res: resid facts":
        bar = residual_bar(row.get("STM resid only", float("nan")))
    v = row[column]
    return bool(v >= bar) if op == "≥" else bool(v <= bar)


def recipe_rows(curves: Mapping[str, Any], runs: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The recipe runs as table rows: first the measured defaults of ``curves`` (``stmltm measure``'s JSON: its
    comparison rows, every held-out wording, its residual notes, seeds averaged), then each run of ``runs`` (the rows
    of ``data/ltm_recipe.jsonl``, ``benchmarks/ltm_recipe.py``: the first trained / held-out question per fact, one
    seed). Recall columns are shares of questions; "STM resid only" is the residual facts' recall in
    STM without a cartridge (NaN where not measured); ΔNLL columns are nats/token over no memory; "misses" lists
    the bars a row misses (:func:`ltm_bar_misses`)."""
    train = {r["mode"]: r for r in curves["comparison"] if r["questions"] == "train"}
    heldout = {r["mode"]: r for r in curves["comparison"] if r["questions"] == "heldout"}
    nll = {r["mode"]: r["nll"] for r in curves["retention"]["rows"]}
    defaults = {"name": "defaults (`stmltm measure`)", "split": curves.get("split", {}).get("name", "tune"),
                "config": curves["consolidation"]["config"],
                "ltm_train": train["LTM (cartridge)"]["recall_cart"],
                "ltm_heldout": heldout["LTM (cartridge)"]["recall_cart"],
                "both_cart_train": train["LTM + residual STM"]["recall_cart"],
                "both_resid_train": train["LTM + residual STM"]["recall_resid"],
                "stm_resid_train": train.get("STM (residual items only)", {}).get("recall", float("nan")),
                "nll_base": nll["no memory"], "nll_ltm": nll["LTM (cartridge)"], "nll_both": nll["LTM + residual STM"]}
    rows = []
    for r in [defaults, *runs]:
        c = r["config"]
        row = {"run": r["name"], "split": r["split"], "backend": c.get("backend") or NOT_RECORDED,
               "retention": f'{c.get("retention_frac", 0.0)} {c.get("retention_corpus", "prompts")}',
               "practice_frac": c.get("practice_frac", 0.0), "residual_prob": c.get("residual_prob", 0.25),
               "residual_max": c.get("residual_max", 4),
               "LTM trained": r["ltm_train"], "LTM held-out": r["ltm_heldout"],
               "LTM+res: cart facts": r["both_cart_train"], "LTM+res: resid facts": r["both_resid_train"],
               "STM resid only": r.get("stm_resid_train", float("nan")),
               "ΔNLL LTM": r["nll_ltm"] - r["nll_base"], "ΔNLL LTM+res": r["nll_both"] - r["nll_base"]}
        row["misses"] = ltm_bar_misses(*(row[k] for k in ("LTM trained", "LTM held-out", "LTM+res: cart facts",
                                                          "LTM+res: resid facts", "STM resid only", "ΔNLL LTM",
                                                          "ΔNLL LTM+res")))
        rows.append(row)
    return rows
