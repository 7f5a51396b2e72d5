"""Recall statistics and curve fits (numpy only).

Recall-decay families for q_ctx(n), n = STM items (q in [0, 1]):

| name | q(n) | parameters |
|---|---|---|
| ``hyperbolic`` | q0 / (1 + n/n50) | q0, n50 |
| ``hill`` | q0 / (1 + (n/n50)^k) | q0, n50, k |
| ``exponential`` | q0 · exp(-n/nu) | q0, nu |
| ``linear`` | clip(q0 - rho·n, 0, 1) | q0, rho |

With the number of questions asked at each n (``trials``), the families are fitted by **binomial maximum
likelihood** (recall is a proportion of a handful of questions, not a Gaussian measurement) and ranked by AICc
(small-sample AIC, sample size = questions asked) with Akaike weights (the probability that each family is the best
of the set); without trials, by least squares and a Gaussian AIC.

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
    aic: float  # binomial AIC 2k − 2 ln L with trials, else Gaussian m·ln(RSS/m) + 2k (lower is better)
    loglik: float | None = None  # binomial log-likelihood, nats (None: least squares)
    aicc: float | None = None  # AIC + 2k(k+1)/(N − k − 1), N = questions asked (inf when N ≤ k + 1)
    weight: float | None = None  # Akaike weight within the set it was ranked in (fit_all_recall)

    def predict(self, n) -> np.ndarray:
        f, names = RECALL_MODELS[self.model]
        return f(np.asarray(n, dtype=float), *[self.params[k] for k in names])


def _aic(rss: float, m: int, k: int) -> float:
    return m * math.log(max(rss, 1e-300) / m) + 2 * k


def fit_recall(n: Sequence[float], q: Sequence[float], model: str = "hyperbolic",
               trials: Sequence[int] | None = None) -> Fit:
    """Fit a recall-decay family, with q0 constrained to [0, 1] (a probability): least squares, or with ``trials``
    (questions asked at each n; hits = q·trials) binomial maximum likelihood.

    A log-spaced grid over the scale parameter (closed-form least-squares q0 at each point) then a pattern search
    on the objective; numpy only.
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
    t_arr = None if trials is None else np.asarray(trials, dtype=float)
    if t_arr is not None and (t_arr.shape != n_arr.shape or (t_arr < 1).any()):
        raise ValueError("trials must give a count >= 1 for every n")
    hits = None if t_arr is None else np.round(q_arr * t_arr)

    def sse(theta: np.ndarray) -> float:
        r = q_arr - f(n_arr, *theta)
        return float(np.dot(r, r))

    def nll(theta: np.ndarray) -> float:
        pr = np.clip(f(n_arr, *theta), 1e-9, 1 - 1e-9)
        return float(-(hits * np.log(pr) + (t_arr - hits) * np.log(1 - pr)).sum())

    objective = sse if t_arr is None else nll

    if model == "linear":
        A = np.vstack([np.ones_like(n_arr), -n_arr]).T
        theta = np.linalg.lstsq(A, q_arr, rcond=None)[0]
        if theta[1] < 0:  # recall cannot rise with n: flat fit
            theta = np.array([float(np.mean(q_arr)), 0.0])
        theta[0] = float(np.clip(theta[0], 0.0, 1.0))
        starts = [theta]
    else:
        scored = []
        ks = [1.0] if model != "hill" else [0.5, 0.75, 1.0, 1.5, 2.0, 3.0]
        for scale in np.geomspace(span / 1000, span * 100, 80):
            for k in ks:
                shape = f(n_arr, 1.0, scale, k) if model == "hill" else f(n_arr, 1.0, scale)
                denom = float(np.dot(shape, shape))
                q0 = float(np.clip(np.dot(shape, q_arr) / denom, 0.0, 1.0)) if denom > 0 else 0.0
                th = np.array([q0, scale, k] if model == "hill" else [q0, scale])
                scored.append((objective(th), len(scored), th))
        starts = [th for *_, th in sorted(scored, key=lambda t: t[:2])[:3]]
        if model == "hill":  # Hill nests the hyperbolic law (k = 1): start from its optimum too
            hyp = fit_recall(n_arr, q_arr, "hyperbolic", trials)
            starts.append(np.array([hyp.params["q0"], hyp.params["n50"], 1.0]))
    if model != "linear" or t_arr is not None:  # least-squares linear is exact; everything else is refined
        theta = min((_pattern_search(objective, th, model) for th in starts), key=objective)
    resid = q_arr - f(n_arr, *theta)
    rss = float(np.dot(resid, resid))
    k, params = len(names), dict(zip(names, map(float, theta)))
    if t_arr is None:
        return Fit(model, params, resid.tolist(), math.sqrt(rss / len(q_arr)), _aic(rss, len(q_arr), k))
    loglik, big_n = -nll(theta), float(t_arr.sum())
    aic = 2 * k - 2 * loglik
    aicc = aic + 2 * k * (k + 1) / (big_n - k - 1) if big_n > k + 1 else math.inf
    return Fit(model, params, resid.tolist(), math.sqrt(rss / len(q_arr)), aic, loglik, aicc)


def _pattern_search(objective: Callable[[np.ndarray], float], theta: np.ndarray, model: str) -> np.ndarray:
    """Coordinate pattern search from ``theta`` within the family's constraints (q0 in [0, 1], scales > 0, ρ ≥ 0),
    halving the step until it is below 1e-10 of the parameter (or 20,000 sweeps)."""
    theta = np.array(theta, dtype=float)
    step = np.abs(theta) * 0.25 + 1e-3
    best = objective(theta)
    for _ in range(20_000):
        improved = False
        for i in range(len(theta)):
            for sgn in (1, -1):
                cand = theta.copy()
                cand[i] += sgn * step[i]
                scale_ok = cand[1] >= 0 if model == "linear" else cand[1] > 0
                if not scale_ok or not 0 <= cand[0] <= 1 or (model == "hill" and cand[2] <= 0):
                    continue
                v = objective(cand)
                if v < best:
                    theta, best, improved = cand, v, True
        if not improved:
            step *= 0.5
            if (step <= 1e-10 * (np.abs(theta) + 1e-6)).all():
                break
    return theta


def fit_all_recall(n: Sequence[float], q: Sequence[float], trials: Sequence[int] | None = None) -> list[Fit]:
    """Every family, best first (lowest AICc with ``trials``, else lowest Gaussian AIC), each with its Akaike
    weight exp(−Δ/2) / Σ exp(−Δ/2) over the set."""
    fits = sorted((fit_recall(n, q, m, trials) for m in RECALL_MODELS),
                  key=lambda fit: fit.aicc if fit.aicc is not None else fit.aic)
    scores = np.array([f.aicc if f.aicc is not None else f.aic for f in fits], dtype=float)
    if np.isfinite(scores[0]):
        w = np.exp(-(scores - scores[0]) / 2)
        for f, wi in zip(fits, w / w.sum()):
            f.weight = float(wi)
    return fits


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


BOOTSTRAP_CELLS = 4_000_000  # (resample, cluster, unit) cells drawn at once by cluster_bootstrap: ~100 MB of arrays


def cluster_bootstrap(clusters: Sequence[str], units: Sequence[str], hits: Sequence[float], n_boot: int = 2000,
                      seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``hits`` (one value per question: a hit in [0, 1], or a paired difference of two runs' hits on the
    same question, in [-1, 1]) with a two-stage percentile-bootstrap interval:
    resample clusters (relations) with replacement, then units (facts) within each drawn cluster, and keep every
    question of a drawn unit. Failures cluster by relation, so this interval is wider, and honest, where a
    binomial interval over questions is not. Returns (mean, low, high); one cluster gives the within-cluster
    interval only."""
    if not (len(clusters) == len(units) == len(hits)) or not len(hits):
        raise ValueError("clusters, units and hits must be non-empty and of equal length")
    by_cluster: dict[str, dict[str, list[float]]] = {}
    for c, u, h in zip(clusters, units, hits):
        by_cluster.setdefault(str(c), {}).setdefault(str(u), []).append(float(h))
    # per cluster, its units' (sum of hits, questions), padded to the largest cluster's unit count
    sizes = np.array([len(us) for us in by_cluster.values()])
    width = int(sizes.max())
    sums, counts = np.zeros((len(sizes), width)), np.zeros((len(sizes), width))
    for k, us in enumerate(by_cluster.values()):
        sums[k, : len(us)] = [sum(v) for v in us.values()]
        counts[k, : len(us)] = [len(v) for v in us.values()]
    rng = np.random.default_rng(seed)
    block = max(1, BOOTSTRAP_CELLS // (len(sizes) * width))  # resamples per block: bounded memory
    parts = []
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        drawn = rng.integers(0, len(sizes), size=(b, len(sizes)))  # clusters of each resample
        m = sizes[drawn][..., None]  # units in each drawn cluster
        pick = np.minimum((rng.random((b, len(sizes), width)) * m).astype(int), m - 1)  # units within it
        keep = np.arange(width) < m  # a cluster of m units draws m of them
        rows = drawn[..., None]
        parts.append((sums[rows, pick] * keep).sum((1, 2)) / (counts[rows, pick] * keep).sum((1, 2)))
    boots = np.concatenate(parts)
    mean = float(np.mean(np.asarray(hits, float)))
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return mean, float(min(lo, mean)), float(max(hi, mean))
