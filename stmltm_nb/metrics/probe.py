"""Probes, numpy only: the probe-predicted cartridge loss L̂_cart (fit a learning curve to a short run and
extrapolate) and the recall probe's calibration (:func:`probe_offset`, :func:`predict_q_cart`; the run itself is
:mod:`~stmltm_nb.metrics.recall_probe`).

Model: L(s) = L_inf + a · s^(−alpha) over training steps s ≥ 1 (power-law learning curve). The probe trains
for the first few steps only; the fit predicts the loss after the full number of steps. The upper confidence
bound L̂⁺ adds z · (RMSE of the fit residuals) (a crude but honest UCB).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PROBE_SHARE = 0.25  # the recall probe's size as a share of the full run's (metrics.recall_probe)
PROBE_MIN_ITEMS = 8  # the replica probe trains at least this many items (fewer: recall in steps of 1/4 or coarser)
PROBE_VARIANTS = ("steps", "replica", "teacher")  # all items for 1/4 of the steps (the shipped probe) | n/4 items
# with p and steps scaled by n/4 | no training: the base model with each item alone in context (metrics.recall_probe)
PROBE_EPS = 1 / 128  # recall clipped to [ε, 1 − ε] before log-odds (half a question in 64)


@dataclass
class LearningCurve:
    l_inf: float
    a: float
    alpha: float
    rmse: float  # of the fit on the probe steps, loss units

    def predict(self, step: float) -> float:
        return self.l_inf + self.a * step ** (-self.alpha)

    def ucb(self, step: float, z: float = 1.64) -> float:
        return self.predict(step) + z * self.rmse


def smooth(losses: Sequence[float], window: int = 5) -> np.ndarray:
    """Trailing moving average (the first points average what exists)."""
    x = np.asarray(losses, float)
    c = np.cumsum(np.r_[0.0, x])
    idx = np.arange(1, x.size + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def fit_learning_curve(losses: Sequence[float], start: int = 1) -> LearningCurve:
    """Fit L(s) = L_inf + a·s^(−alpha) to per-step losses, using steps ``start``..len (s counts from 1, so
    warm-up steps can be left out of the fit). A grid over alpha with least squares for (L_inf, a) at each;
    L_inf is constrained to [0, min loss] (a loss floor cannot be negative or above what was reached)."""
    y_all = np.asarray(losses, float)
    if y_all.size - (start - 1) < 4 or not np.isfinite(y_all).all():
        raise ValueError("need at least 4 finite losses after the start step")
    s = np.arange(start, y_all.size + 1, dtype=float)
    y = y_all[start - 1 :]
    lo, hi = 0.0, float(y.min())
    best = None
    for alpha in np.linspace(0.05, 3.0, 120):
        x = s ** (-alpha)
        X = np.vstack([np.ones_like(s), x]).T
        (l_inf, a), *_ = np.linalg.lstsq(X, y, rcond=None)
        if not lo <= l_inf <= hi:  # refit a with L_inf on the nearest bound
            l_inf = min(max(l_inf, lo), hi)
            a = float(x @ (y - l_inf) / (x @ x))
        r = y - (l_inf + a * x)
        sse = float(r @ r)
        if best is None or sse < best[0]:
            best = (sse, alpha, l_inf, a)
    sse, alpha, l_inf, a = best
    return LearningCurve(float(l_inf), float(a), float(alpha), math.sqrt(sse / y.size))


def probe_prediction(losses: Sequence[float], probe_steps: int, total_steps: int | None = None,
                     window: int = 5, skip: int | str = "auto") -> dict[str, float]:
    """Predict the (smoothed) final loss of a run from its first ``probe_steps`` losses.

    ``skip`` leaves the first steps out of the fit; ``"auto"`` skips the initial plateau (warm-up): the steps
    before the smoothed loss first falls below 90 % of its starting value. Returns predicted, ucb, actual (smoothed final loss
    of the full history, if it is long enough) and the prediction error (predicted − actual), all in the loss's
    units (nats/token).
    """
    total = total_steps or len(losses)
    sm = smooth(losses, window)
    if skip == "auto":
        below = np.nonzero(sm[:probe_steps] < 0.9 * sm[0])[0]
        skip = int(below[0]) if below.size and below[0] <= probe_steps - 4 else 0
    fit = fit_learning_curve(sm[:probe_steps], start=int(skip) + 1)
    out = {"probe_steps": probe_steps, "skipped_steps": int(skip), "total_steps": total, "predicted": fit.predict(total),
           "ucb": fit.ucb(total), "l_inf": fit.l_inf, "alpha": fit.alpha}
    if len(losses) >= total:
        out["actual"] = float(sm[total - 1])
        out["error"] = out["predicted"] - out["actual"]
    return out


def _logit(q: float) -> float:
    q = min(max(q, PROBE_EPS), 1 - PROBE_EPS)
    return math.log(q / (1 - q))


def probe_offset(pairs: Sequence[tuple[float, float]]) -> float:
    """The recall probe's calibration, in log-odds: mean of logit(full-run recall) − logit(probe recall) over
    ``pairs`` of (q_probe, q_full) measured on the tuning split (fractions; clipped to [ε, 1 − ε], ε = 1/128).

    Log-odds, not a plain difference: an assumption (one calibration pair cannot test it) that recall grows like a
    sigmoid of the training exposures, so that the same 4× more steps adds a constant in log-odds and less in
    recall where the probe is already near 0 or 1. Raises on no pairs or values outside [0, 1]."""
    if not pairs:
        raise ValueError("probe_offset needs at least one (q_probe, q_full) pair from the tuning split")
    for qp, qf in pairs:
        if not (0 <= qp <= 1 and 0 <= qf <= 1):
            raise ValueError(f"recall values must be in [0, 1], got ({qp}, {qf})")
    return float(np.mean([_logit(qf) - _logit(qp) for qp, qf in pairs]))


def predict_q_cart(q_probe: float, offset: float) -> float:
    """q̂_cart: the probe's held-out recall moved by the calibrated log-odds ``offset`` (:func:`probe_offset`)."""
    return float(1 / (1 + math.exp(-(_logit(q_probe) + offset))))


def probe_table(rows: Sequence[Mapping[str, Any]], share: float, variant: str = "steps") -> dict[str, Any]:
    """Predicted vs measured held-out recall from the rows of ``benchmarks/probe.py`` (``split``, ``n``, ``kind`` =
    "probe" | "full", ``variant`` of a probe (``"steps"`` where absent: the first design), ``q``, ``seconds``): the
    log-odds offset from the tuning split's (probe, full) pairs of ``variant``, then one row per report-split probe
    with q_probe, predicted, measured (None: no full run yet), the measured value's binomial standard error over the
    n items (one question each), error and whether it is within ±0.10. ``share``: the probe's size as a share of the
    full run (recorded beside the table)."""
    get: dict[tuple[str, int, str], Mapping[str, Any]] = {}
    for r in rows:
        if r["kind"] == "full":
            get[(r["split"], r["n"], "full")] = r
        elif r.get("variant", "steps") == variant:
            get[(r["split"], r["n"], "probe")] = r
    tuned = [k for k in get if k[0] == "tune" and k[2] == "probe" and ("tune", k[1], "full") in get]
    pairs = [(get[k]["q"], get[("tune", k[1], "full")]["q"]) for k in tuned]
    if not pairs:
        return {"variant": variant, "offset": None, "probe_share": share, "calibration": [], "rows": []}
    off = probe_offset(pairs)
    table = []
    for (split, n, kind), r in sorted(get.items()):
        if split != "report" or kind != "probe":
            continue
        pred, full = predict_q_cart(r["q"], off), get.get((split, n, "full"))
        err = None if full is None else pred - full["q"]
        table.append({"n": n, "probe_items": r.get("items", n), "probe_steps": r.get("steps"), "q_probe": r["q"], "q_probe_train": r.get("q_train"),
                      "predicted": pred, "measured": None if full is None else full["q"],
                      "measured_se": None if full is None else math.sqrt(full["q"] * (1 - full["q"]) / n),
                      "error": err, "within_0_10": None if err is None else abs(err) <= 0.10 + 1e-9,
                      "probe_seconds": r["seconds"], "full_seconds": None if full is None else full["seconds"]})
    judged = [r["within_0_10"] for r in table if r["within_0_10"] is not None]
    verdict = ("not judged: no full run on the report split yet" if not judged else
               "within ±0.10 at every size measured" if all(judged) else "not within ±0.10 at every size measured")
    return {"variant": variant, "offset": off, "probe_share": share, "min_items": PROBE_MIN_ITEMS,
            "calibration": [{"n": k[1], "q_probe": get[k]["q"], "q_probe_train": get[k].get("q_train"),
                             "q_full": get[("tune", k[1], "full")]["q"]} for k in tuned],
            "rows": table, "verdict": verdict, "within": sum(judged),
            "measured_sizes": sum(1 for r in table if r["measured"] is not None)}


def probe_results(path: str | Path, variant: str = "steps") -> dict[str, Any] | None:
    """:func:`probe_table` of the recall-probe rows in the JSONL file ``path`` (``benchmarks/probe.py`` writes
    them; a notebook passes the file of its checkout) for one probe design (default: the shipped one); None when
    the file is absent."""
    if variant not in PROBE_VARIANTS:
        raise ValueError(f"probe variant must be one of {PROBE_VARIANTS}, got {variant!r}")
    tables = all_probe_results(path)
    return None if tables is None else tables[variant]


def all_probe_results(path: str | Path) -> dict[str, dict[str, Any]] | None:
    """:func:`probe_results` for every design in :data:`PROBE_VARIANTS` (the rows read once); None when the file
    is absent."""
    from stmltm_nb.io import read_jsonl

    if not Path(path).is_file():
        return None
    rows = read_jsonl(path)
    return {v: probe_table(rows, PROBE_SHARE, v) for v in PROBE_VARIANTS}
