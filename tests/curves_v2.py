"""A hand-made schema-2 measured-curves object (no model, no torch) for the decision-side tests: every section the
reader validates, numbers of the size measured on the default model. Tests copy it and change one field."""

from __future__ import annotations

import copy
from typing import Any

MODES = ("no memory", "STM (all items)", "STM + retrieval", "STM (own chunk, oracle)", "teacher (fact alone)",
         "LTM (cartridge)", "LTM + residual STM", "STM (residual items only)")
# (mode, questions) -> (recall, lo, hi, recall_cart, its lo, its hi); residual figures filled in below
RECALL = {
    ("no memory", "heldout"): (0.02, 0.0, 0.05, 0.02, 0.0, 0.05),
    ("STM (all items)", "heldout"): (0.30, 0.20, 0.41, 0.28, 0.18, 0.40),
    ("STM + retrieval", "heldout"): (0.85, 0.76, 0.92, 0.86, 0.77, 0.93),
    ("STM (own chunk, oracle)", "heldout"): (0.90, 0.82, 0.96, 0.90, 0.82, 0.96),
    ("teacher (fact alone)", "heldout"): (0.92, 0.85, 0.97, 0.92, 0.85, 0.97),
    ("LTM (cartridge)", "heldout"): (0.55, 0.42, 0.66, 0.60, 0.47, 0.71),
    ("LTM + residual STM", "heldout"): (0.70, 0.60, 0.79, 0.80, 0.70, 0.88),
    ("STM (residual items only)", "heldout"): (0.60, 0.45, 0.74, None, None, None),
}


def _row(mode: str, questions: str) -> dict[str, Any]:
    key = (mode, "heldout")
    rec, lo, hi, c, c_lo, c_hi = RECALL[key]
    if questions == "train":
        rec, lo, hi = min(1.0, rec + 0.1), min(1.0, lo + 0.1), min(1.0, hi + 0.1)
    teacher = RECALL[("teacher (fact alone)", "heldout")][0]
    cart_modes = ("LTM (cartridge)", "LTM + residual STM")
    return {"mode": mode, "questions": questions, "split": "report", "recall": rec, "lo": lo, "hi": hi,
            "recall_cart": c, "recall_cart_lo": c_lo, "recall_cart_hi": c_hi,
            "recall_resid": 0.6 if mode != "LTM (cartridge)" else None,
            "recall_resid_lo": 0.45 if mode != "LTM (cartridge)" else None,
            "recall_resid_hi": 0.74 if mode != "LTM (cartridge)" else None,
            "frac_of_teacher": None if mode == "teacher (fact alone)" else rec / teacher,
            "seeds": [rec - 0.02, rec + 0.02] if mode in cart_modes else None,
            "n_questions": 336, "n_facts": 112, "n_relations": 16, "s_per_query": 0.3,
            "answer_nll": 1.2 if mode != "no memory" else 7.5}


def v2_curves() -> dict[str, Any]:
    """A fresh deep copy of the hand-made schema-2 file."""
    return copy.deepcopy(_BASE)


_BASE: dict[str, Any] = {
    "schema_version": 2, "model": "SmolLM2-135M-Instruct", "fast": False, "n_facts": 64, "seeds": [0, 1],
    "machine": {"python": "3.11.7", "cpus": 2},
    "recall": {"best_fit": "exponential", "fits": [
        {"model": "exponential", "params": {"q0": 0.595, "nu": 66.06}},
        {"model": "hyperbolic", "params": {"q0": 0.649, "n50": 32.2}},
        {"model": "linear", "params": {"q0": 0.535, "rho": 0.00363}},
        {"model": "hill", "params": {"q0": 0.59, "n50": 41.96, "k": 1.343}}],
        "pooled": [{"n": 1, "recall": 0.9}, {"n": 64, "recall": 0.3}]},
    "cost": {"rows": [], "fit_cached_linear": {"coef": {"a": -2.6e-05, "b": 0.000488}},
             "fit_stateless_linear": {"coef": {"a": -0.224, "b": 0.0343}}},
    "consolidation": {"config": {"p": 128}, "c_upd_s": 1538.1,
                      "seconds": {"teacher": 154.6, "train": 1383.5, "total": 1538.1}},
    "cartridge": {"r_cart_s": 0.0, "p": 128},
    "signal": {"per_item_at_init": {"m": 64, "snr_m": 1.43, "snr_m_lo": 1.20}},
    "comparison": [_row(m, q) for m in MODES for q in ("train", "heldout")],
    "retention": {"passages": 12, "tokens": 2400, "rows": [
        {"mode": "no memory", "nll": 3.10, "delta_nll": 0.0, "lo": 0.0, "hi": 0.0, "seeds": None},
        {"mode": "LTM (step 0)", "nll": 3.12, "delta_nll": 0.02, "lo": 0.00, "hi": 0.04, "seeds": None},
        {"mode": "LTM (cartridge)", "nll": 3.18, "delta_nll": 0.08, "lo": 0.05, "hi": 0.11, "seeds": [0.07, 0.09]},
        {"mode": "LTM + residual STM", "nll": 3.13, "delta_nll": 0.03, "lo": 0.01, "hi": 0.05,
         "seeds": [0.02, 0.04]}]},
    "retrieval": {"k": 4, "library": "bm25s", "cost": {
        "rows": [{"n": 16, "ttft_s": 0.13, "search_s": 0.001, "excess_s": 0.010},
                 {"n": 256, "ttft_s": 0.13, "search_s": 0.003, "excess_s": 0.012}],
        "fit_linear": {"coef": {"a": 0.0099, "b": 8.5e-06}}}},
}
