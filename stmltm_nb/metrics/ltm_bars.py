"""The bars a served memory must meet after a consolidation (issue #13), in one place: notebook 03's verdicts, the
README's bar table and its "bars still missed" line are computed from here. Plain Python (no torch). Recall is a
share of questions answered in [0, 1]; ΔNLL is the general-text NLL with the memory minus without it, nats/token.
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


def ltm_bar_misses(ltm_train: float, ltm_heldout: float, both_cart: float, both_resid: float, stm_resid: float,
                   dnll_ltm: float, dnll_both: float) -> list[str]:
    """The bars these measurements miss, each as a short phrase with the measured value (empty: every bar met).
    ``stm_resid`` is the residual items' recall in STM without a cartridge (same items, same questions); when it is
    NaN (not measured) the residual bar is the absolute floor alone."""
    misses = [f"{name} {v:.2f} < {bar:.2f}" for (name, bar), v in zip(LTM_RECALL_BARS.items(),
                                                                   (ltm_train, ltm_heldout, both_cart)) if not v >= bar]
    if not both_resid >= max(RESIDUAL_FLOOR, RESIDUAL_SHARE * stm_resid):  # a NaN recall is a miss
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
