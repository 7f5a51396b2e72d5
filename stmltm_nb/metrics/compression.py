"""Description length and the MDL gain G_MDL = n·b − DL(Δφ) − D_resid, in two units.

DL(Δφ) in bits: quantise the update Δφ = φ − φ_0 on a uniform grid of step ``step`` (the stated precision),
then entropy-code the integer symbols with their empirical distribution (the ideal code length of an
adaptive/static arithmetic coder, Σ_k c_k·log2(d/c_k)), plus a header (the codebook: each used symbol value
and count as 32-bit integers). Zero-heavy or low-entropy deltas code short; i.i.d. uniform deltas cost
log2(#levels) bits per scalar.

Two readings of G_MDL (neither binds on this model, so gate G3 logs G_MDL and never blocks: the storage form is
positive once the STM outgrows the p-token cartridge, the information form is negative for any realistic buffer of
independent facts; the serving footprint enters the rule through its cost terms; see notebook 04):

- storage (bytes of serving memory): n·b = KV bytes of the STM tokens; DL = bytes of the cartridge KV;
  D_resid = KV bytes of residual STM. Positive when the cartridge is smaller than the STM it replaces.
- information (bits): n·b = Σ −log2 p_0(x) (base-model code length of the STM text);
  DL(Δφ) = quantised-and-coded update; D_resid = Σ −log2 p_φ(x) (code length of the STM under the cartridge).
  Storage counts every float of φ; information counts only what the update must say. They differ by orders of
  magnitude because φ has ~10⁶ floats while a fact list holds ~10³–10⁴ bits of information.

Prequential code: each item coded by a model trained on the items before it, whose summed code lengths stand for
DL(Δφ) + D_resid without coding parameters (Blier & Ollivier 2018). What is measured here is its two-block form
(a cartridge trained on the first half codes the second half), not a per-item online code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def entropy_bits(symbols: np.ndarray) -> float:
    """Ideal code length (bits) of a sequence under its own empirical symbol distribution."""
    s = np.asarray(symbols).ravel()
    if s.size == 0:
        return 0.0
    _, counts = np.unique(s, return_counts=True)
    return float(np.sum(counts * np.log2(s.size / counts)))


def dl_quantized(delta: np.ndarray, step: float) -> dict[str, float]:
    """DL(Δφ) in bits for ``delta`` quantised to multiples of ``step``.

    Returns ``bits`` (payload + header), ``payload_bits``, ``header_bits``, ``levels`` (distinct symbols),
    ``bits_per_param``, ``rms_error`` (quantisation error, same units as delta) and ``naive_bits``
    (16 bits per scalar, the uncompressed fp16 size).
    """
    d = np.asarray(delta, dtype=np.float64).ravel()
    if not (step > 0 and math.isfinite(step)):
        raise ValueError(f"step must be a positive finite number, got {step}")
    if not np.isfinite(d).all():
        raise ValueError("delta contains NaN or inf")
    q = np.round(d / step).astype(np.int64)
    payload = entropy_bits(q)
    levels = int(np.unique(q).size) if q.size else 0
    header = 64.0 * levels + 64.0  # (value, count) per used symbol + the step
    err = float(np.sqrt(np.mean((q * step - d) ** 2))) if d.size else 0.0
    return {"bits": payload + header, "payload_bits": payload, "header_bits": header, "levels": levels,
            "bits_per_param": (payload + header) / max(1, d.size), "rms_error": err, "naive_bits": 16.0 * d.size}


def prequential_bits(item_bits_before_training: Sequence[float]) -> float:
    """Code length (bits) of items each coded by a model trained on earlier items: the sum of the code lengths the
    caller measured. With one model per item that is the prequential code; ``stmltm measure`` passes two blocks
    (the first half under the base model, the second half under a cartridge trained on the first), a two-block
    code, which is an upper bound on it."""
    vals = np.asarray(item_bits_before_training, dtype=float)
    if not np.isfinite(vals).all() or (vals < 0).any():
        raise ValueError("code lengths must be finite and >= 0")
    return float(vals.sum())


@dataclass
class MDLGain:
    unit: str  # "bytes" (storage) or "bits" (information)
    stm: float  # n·b in that unit
    dl: float  # DL(Δφ)
    resid: float  # D_resid
    gain: float  # stm - dl - resid


def g_mdl_storage(n_tokens: int, kv_bytes_per_token: int, cartridge_bytes: int, resid_tokens: int = 0) -> MDLGain:
    """Storage form (bytes of serving memory)."""
    if min(n_tokens, kv_bytes_per_token, cartridge_bytes, resid_tokens) < 0:
        raise ValueError("token counts and byte sizes must be >= 0")
    stm = float(n_tokens * kv_bytes_per_token)
    resid = float(resid_tokens * kv_bytes_per_token)
    return MDLGain("bytes", stm, float(cartridge_bytes), resid, stm - cartridge_bytes - resid)


def g_mdl_information(stm_bits_base: float, dl_bits: float, resid_bits: float) -> MDLGain:
    """Information form (bits): base-model code length of the STM minus (update + residual code length)."""
    for name, v in (("stm_bits_base", stm_bits_base), ("dl_bits", dl_bits), ("resid_bits", resid_bits)):
        if not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be finite and >= 0, got {v}")
    return MDLGain("bits", stm_bits_base, dl_bits, resid_bits, stm_bits_base - dl_bits - resid_bits)


def nats_to_bits(x: float) -> float:
    return x / math.log(2)
