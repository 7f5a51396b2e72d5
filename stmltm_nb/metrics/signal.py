"""Learning-signal estimators (numpy only): gradient SNR, gradient noise scale, sample sufficiency m*.

Per-example gradients g_i (rows of a matrix G, one per independent evidence unit) with mean E[g] and covariance
Σ (McCandlish et al. 2018, arXiv 1812.06162):

- per-example SNR_1 = |E[g]| / sqrt(tr Σ) (one evidence unit's SNR, dimensionless);
- simple noise scale B_simple = tr Σ / |E[g]|² (examples) = 1 / SNR_1²;
- the mean of m examples has SNR_m = sqrt(m / B_simple) = sqrt(m)·SNR_1: the spec's SNR(S_t) of the whole
  buffer, the quantity gate G2 tests (SNR_m >= τ  <=>  m >= τ²·B_simple), on the bootstrap lower bound over items
  (:func:`bootstrap_snr_m`) so that a value just above τ by chance does not pass.

Unbiased estimates from m per-example gradients: S = (1/(m-1)) Σ|g_i - ḡ|² estimates tr Σ, and
|G|² = |ḡ|² - S/m estimates |E[g]|² (it can come out <= 0 when signal is buried in noise; then SNR = 0 and
B_simple = inf).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class GradientSignal:
    m: int  # evidence units (rows)
    mean_sq_norm: float  # unbiased |E[g]|², (loss units / param unit)²
    trace_cov: float  # unbiased tr Σ, same units
    snr1: float  # per-example SNR, dimensionless
    b_simple: float  # noise scale, examples
    snr_m: float  # SNR of the mean of all m rows, dimensionless
    snr_m_lo: float | None = None  # bootstrap lower bound of snr_m over the rows (None: not computed)

    def m_needed(self, tau: float) -> float:
        """Evidence units needed for SNR_m >= tau: tau²·B_simple."""
        return tau * tau * self.b_simple


def gradient_signal(grads: np.ndarray) -> GradientSignal:
    """SNR and B_simple from a matrix of per-example gradients, shape (m, d), m >= 2."""
    g = np.asarray(grads, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] < 2:
        raise ValueError(f"need a (m >= 2, d) matrix of per-example gradients, got shape {g.shape}")
    if not np.isfinite(g).all():
        raise ValueError("per-example gradients contain NaN or inf")
    return gradient_signal_from_sums(g.shape[0], g.sum(0), float((g * g).sum()))


def gradient_signal_from_sums(m: int, sum_vec: np.ndarray, sum_sq_norms: float) -> GradientSignal:
    """Same estimates from streaming sums: Σ g_i (a vector) and Σ |g_i|² (a number), without storing all g_i."""
    if m < 2:
        raise ValueError("need m >= 2 per-example gradients")
    mean = np.asarray(sum_vec, dtype=np.float64) / m
    mean_sq = float(mean @ mean)
    trace = max(0.0, (sum_sq_norms - m * mean_sq) / (m - 1))
    sq = mean_sq - trace / m
    return _signal(m, sq, trace)


MIN_BOOTSTRAP_ITEMS = 8  # below this many rows the resampled noise estimates are degenerate: no bound


def gradient_signal_from_gram(gram: np.ndarray, n_boot: int = 1000, alpha: float = 0.05,
                              seed: int = 0) -> GradientSignal:
    """Same estimates from the Gram matrix of the per-example gradients (gram[i, j] = g_i·g_j, shape (m, m)),
    with ``snr_m_lo``, the one-sided (1 − ``alpha``) bootstrap lower bound of SNR_m over rows
    (:func:`bootstrap_snr_m`; None with fewer than :data:`MIN_BOOTSTRAP_ITEMS` rows). The Gram matrix is all a
    resample needs, so no gradient is kept."""
    gram = np.asarray(gram, dtype=np.float64)
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1] or gram.shape[0] < 2:
        raise ValueError(f"need a square (m >= 2) Gram matrix, got shape {gram.shape}")
    if not np.isfinite(gram).all():
        raise ValueError("the Gram matrix contains NaN or inf")
    sig = _from_counts(gram, np.ones(gram.shape[0]))
    if gram.shape[0] >= MIN_BOOTSTRAP_ITEMS:
        sig.snr_m_lo = bootstrap_snr_m(gram, n_boot, alpha, seed)
    return sig


def _from_counts(gram: np.ndarray, c: np.ndarray) -> GradientSignal:
    """The estimates for a resample that holds row i ``c[i]`` times (Σ c = m)."""
    m = int(round(c.sum()))
    mean_sq = float(c @ gram @ c) / (m * m)
    trace = max(0.0, (float(c @ np.diag(gram)) - m * mean_sq) / (m - 1))
    return _signal(m, mean_sq - trace / m, trace)


def _plugin_snr_m(gram: np.ndarray) -> float:
    """SNR_m of the empirical distribution of the rows (the bootstrap world's true value): √m·|ḡ|/√tr Σ̂, with the
    plug-in (1/m) covariance; the resampled unbiased estimates centre on it, not on the unbiased SNR_m."""
    m = gram.shape[0]
    mean_sq = float(gram.sum()) / (m * m)
    trace = (float(np.trace(gram)) - m * mean_sq) / m
    if trace <= 0:
        return math.inf if mean_sq > 0 else 0.0
    return math.sqrt(m * mean_sq / trace)


def bootstrap_snr_m(gram: np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> float:
    """One-sided (1 − ``alpha``) basic-bootstrap lower bound of SNR_m (dimensionless), floored at 0: rows (items)
    resampled with replacement ``n_boot`` times and SNR_m re-estimated on each; the bound is
    SNR_m − (q₁₋α(SNR_m*) − SNR_m,plug-in), the plug-in value being what the resamples estimate
    (:func:`_plugin_snr_m`). Resamples with a single distinct row (no noise estimate) are dropped."""
    if not 0 < alpha < 1 or n_boot < 1:
        raise ValueError(f"need 0 < alpha < 1 and n_boot >= 1, got {alpha}, {n_boot}")
    gram = np.asarray(gram, dtype=np.float64)
    m = gram.shape[0]
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(m, np.full(m, 1.0 / m), size=n_boot).astype(np.float64)
    vals = [_from_counts(gram, c).snr_m for c in counts if (c > 0).sum() > 1]
    if not vals:
        return 0.0
    point, plugin = _from_counts(gram, np.ones(m)).snr_m, _plugin_snr_m(gram)
    return max(0.0, float(point - (np.quantile(vals, 1 - alpha) - plugin)))


def _signal(m: int, sq: float, trace: float) -> GradientSignal:
    if trace <= 0:
        return GradientSignal(m, sq, trace, math.inf if sq > 0 else 0.0, 0.0 if sq > 0 else math.inf,
                              math.inf if sq > 0 else 0.0)
    if sq <= 0:
        return GradientSignal(m, sq, trace, 0.0, math.inf, 0.0)
    snr1 = math.sqrt(sq / trace)
    return GradientSignal(m, sq, trace, snr1, trace / sq, snr1 * math.sqrt(m))


def noise_scale_two_batches(sq_norm_small: float, b_small: int, sq_norm_big: float, b_big: int) -> tuple[float, float, float]:
    """B_simple from squared norms of mean gradients at two batch sizes (McCandlish et al. App. A).

    ``sq_norm_*`` = |g_B|² of a batch-mean gradient of size B. Unbiased:
    |G|² ≈ (B_big|g_big|² - B_small|g_small|²)/(B_big - B_small), tr Σ ≈ (|g_small|² - |g_big|²)/(1/B_small - 1/B_big).
    Returns (|G|², tr Σ, B_simple) — B_simple in examples (inf when |G|² <= 0).
    """
    if not (0 < b_small < b_big):
        raise ValueError("need 0 < b_small < b_big")
    g2 = (b_big * sq_norm_big - b_small * sq_norm_small) / (b_big - b_small)
    tr = (sq_norm_small - sq_norm_big) / (1 / b_small - 1 / b_big)
    return g2, tr, (tr / g2 if g2 > 0 else math.inf)


def m_star(dl_bits: float, epsilon: float, delta: float = 0.05, agnostic: bool = False) -> float:
    """Sample sufficiency m* (evidence units) from the description length of the update.

    The spec's m* ≈ (DL(Δφ) + log(1/δ)) / ε with units made consistent: DL in **bits** is converted to nats
    (× ln 2) to add to ln(1/δ) (nats); ε is an error rate or a loss scaled to [0, 1]. This is the realisable
    Occam bound (Blumer et al. 1987). ``agnostic=True`` gives (DL·ln2 + ln(1/δ)) / (2ε²) (Hoeffding + union
    over the code), for training loss not ≈ 0.
    """
    if not (dl_bits >= 0 and math.isfinite(dl_bits)):
        raise ValueError(f"DL must be a finite number of bits >= 0, got {dl_bits}")
    if not 0 < epsilon <= 1:
        raise ValueError(f"epsilon must be in (0, 1], got {epsilon}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    nats = dl_bits * math.log(2) + math.log(1 / delta)
    return nats / (2 * epsilon * epsilon) if agnostic else nats / epsilon
