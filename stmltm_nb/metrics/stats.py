"""Recall statistics and curve fits (numpy only).

Recall-decay families for q_ctx(n), n = STM items (q in [0, 1]):

| name | q(n) | parameters |
|---|---|---|
| ``hyperbolic`` | q0 / (1 + n/n50) | q0, n50 |
| ``hill`` | q0 / (1 + (n/n50)^k) | q0, n50, k |
| ``exponential`` | q0 · exp(-n/nu) | q0, nu |
| ``linear`` | clip(q0 - rho·n, 0, 1) | q0, rho |

Cost models for c_ctx(n) (seconds per query): ``a + b·n`` and ``a + b·n + c·n²`` (least squares).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def wilson_interval(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (default 95 %). Returns (low, high) in [0, 1]."""
    if total <= 0:
        raise ValueError("total must be positive")
    if not 0 <= hits <= total:
        raise ValueError(f"hits must be in [0, total], got {hits} of {total}")
    p = hits / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))  # contains p (float-safe)


RECALL_MODELS: dict[str, tuple[Callable[..., np.ndarray], list[str]]] = {
    "hyperbolic": (lambda n, q0, n50: q0 / (1 + n / n50), ["q0", "n50"]),
    "hill": (lambda n, q0, n50, k: q0 / (1 + np.power(n / n50, k)), ["q0", "n50", "k"]),
    "exponential": (lambda n, q0, nu: q0 * np.exp(-n / nu), ["q0", "nu"]),
    "linear": (lambda n, q0, rho: np.clip(q0 - rho * n, 0.0, 1.0), ["q0", "rho"]),
}


@dataclass
class Fit:
    model: str
    params: dict[str, float]
    residuals: list[float]  # observed - fitted
    rmse: float
    aic: float  # Gaussian-likelihood AIC: m·ln(RSS/m) + 2k (lower is better)

    def predict(self, n) -> np.ndarray:
        f, names = RECALL_MODELS[self.model]
        return f(np.asarray(n, dtype=float), *[self.params[k] for k in names])


def _aic(rss: float, m: int, k: int) -> float:
    return m * math.log(max(rss, 1e-300) / m) + 2 * k


def fit_recall(n: Sequence[float], q: Sequence[float], model: str = "hyperbolic") -> Fit:
    """Least-squares fit of a recall-decay family, with q0 constrained to [0, 1] (a probability).

    A log-spaced grid over the scale parameter (closed-form q0 at each point) then a pattern search; numpy only.
    """
    if model not in RECALL_MODELS:
        raise ValueError(f"model must be one of {list(RECALL_MODELS)}, got {model!r}")
    n_arr = np.asarray(n, dtype=float)
    q_arr = np.asarray(q, dtype=float)
    if n_arr.shape != q_arr.shape or n_arr.size < 2:
        raise ValueError("n and q must have the same length >= 2")
    if not (np.isfinite(n_arr).all() and np.isfinite(q_arr).all()):
        raise ValueError("n and q must be finite")
    f, names = RECALL_MODELS[model]
    span = max(float(n_arr.max()), 1.0)

    def sse(theta: np.ndarray) -> float:
        r = q_arr - f(n_arr, *theta)
        return float(np.dot(r, r))

    if model == "linear":
        A = np.vstack([np.ones_like(n_arr), -n_arr]).T
        theta = np.linalg.lstsq(A, q_arr, rcond=None)[0]
        if theta[1] < 0:  # recall cannot rise with n: flat fit
            theta = np.array([float(np.mean(q_arr)), 0.0])
        theta[0] = float(np.clip(theta[0], 0.0, 1.0))
    else:
        best = None
        ks = [1.0] if model != "hill" else [0.5, 0.75, 1.0, 1.5, 2.0, 3.0]
        for scale in np.geomspace(span / 1000, span * 100, 80):
            for k in ks:
                shape = f(n_arr, 1.0, scale, k) if model == "hill" else f(n_arr, 1.0, scale)
                denom = float(np.dot(shape, shape))
                q0 = float(np.clip(np.dot(shape, q_arr) / denom, 0.0, 1.0)) if denom > 0 else 0.0
                th = np.array([q0, scale, k] if model == "hill" else [q0, scale])
                s = sse(th)
                if best is None or s < best[0]:
                    best = (s, th)
        theta = best[1]
        step = np.abs(theta) * 0.25 + 1e-9
        for _ in range(200):  # pattern search refinement
            improved = False
            for i in range(len(theta)):
                for sgn in (1, -1):
                    cand = theta.copy()
                    cand[i] += sgn * step[i]
                    if cand[1] <= 0 or not 0 <= cand[0] <= 1 or (model == "hill" and cand[2] <= 0):
                        continue
                    if sse(cand) < sse(theta):
                        theta, improved = cand, True
            if not improved:
                step *= 0.5
                if step.max() < 1e-10:
                    break
    resid = q_arr - f(n_arr, *theta)
    rss = float(np.dot(resid, resid))
    return Fit(model, dict(zip(names, map(float, theta))), resid.tolist(), math.sqrt(rss / len(q_arr)),
               _aic(rss, len(q_arr), len(names)))


def fit_all_recall(n: Sequence[float], q: Sequence[float]) -> list[Fit]:
    """Every family, best (lowest AIC) first."""
    return sorted((fit_recall(n, q, m) for m in RECALL_MODELS), key=lambda fit: fit.aic)


@dataclass
class CostFit:
    coef: dict[str, float]  # a [s], b [s/item], c [s/item²]
    residuals: list[float]
    rmse: float
    aic: float

    def predict(self, n) -> np.ndarray:
        n = np.asarray(n, dtype=float)
        return self.coef["a"] + self.coef["b"] * n + self.coef.get("c", 0.0) * n * n


def fit_cost(n: Sequence[float], c: Sequence[float], quadratic: bool = False) -> CostFit:
    """Least-squares fit of c_ctx(n) = a + b·n (+ c·n²)."""
    n_arr = np.asarray(n, dtype=float)
    c_arr = np.asarray(c, dtype=float)
    k = 3 if quadratic else 2
    if n_arr.shape != c_arr.shape or n_arr.size < k:
        raise ValueError(f"need at least {k} (n, cost) points of equal length")
    cols = [np.ones_like(n_arr), n_arr] + ([n_arr * n_arr] if quadratic else [])
    A = np.vstack(cols).T
    theta = np.linalg.lstsq(A, c_arr, rcond=None)[0]
    resid = c_arr - A @ theta
    rss = float(np.dot(resid, resid))
    names = ["a", "b", "c"][:k]
    return CostFit(dict(zip(names, map(float, theta))), resid.tolist(), math.sqrt(rss / len(c_arr)),
                   _aic(rss, len(c_arr), k))


def paired_gap(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0,
               level: float = 0.95) -> tuple[float, float, float]:
    """Mean of (a - b) over paired observations with a percentile-bootstrap interval: (mean, low, high)."""
    a_arr, b_arr = np.asarray(a, float), np.asarray(b, float)
    if a_arr.shape != b_arr.shape or a_arr.size == 0:
        raise ValueError("a and b must be non-empty and paired")
    d = a_arr - b_arr
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return float(d.mean()), float(lo), float(hi)
