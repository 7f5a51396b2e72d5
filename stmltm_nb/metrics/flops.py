"""FLOPs of one student training step, counted from the model's shapes and the step's real token counts: the
numerator of the trainer's roofline (``benchmarks/roofline.py`` times the same step and measures the machine's
matmul peak). Torch-free.

Units: FLOPs, one multiply-add counted as 2. A micro-batch is ``rows`` rows padded to ``width`` token positions
(every position is computed, padding included), each attending to a KV prefix of ``prefix`` tokens (the cartridge;
0 for LoRA or plain STM) and to the positions before it; the output head runs only at ``kept`` positions per row
(``logits_to_keep``).

The counts follow the standard transformer accounting (Kaplan et al. 2020; Chinchilla's appendix F) for a
Llama-style block: q, k, v, o projections (grouped-query: k and v have ``kv_heads`` heads), a gated MLP of three
matrices, attention scores and the weighted sum over the visible keys. Backward: the base model is frozen, so only
activation gradients flow (one matmul per forward matmul, no weight gradients), and attention costs two matmuls
per forward one (gradients of the scores and of the values); the cartridge's own gradient is part of that. Norms,
softmax, RoPE and the optimizer's element-wise work are left out (a few per cent at these widths).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelShape:
    """The sizes that set a Llama-style model's FLOPs."""

    layers: int
    d_model: int
    heads: int
    kv_heads: int
    head_dim: int
    d_ff: int
    vocab: int

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        """From a ``transformers`` config (``LlamaConfig`` fields; ``head_dim`` defaults to d_model / heads)."""
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(layers=config.num_hidden_layers, d_model=config.hidden_size, heads=config.num_attention_heads,
                   kv_heads=config.num_key_value_heads, head_dim=head_dim, d_ff=config.intermediate_size,
                   vocab=config.vocab_size)

    def linear_flops_per_position(self) -> int:
        """Forward FLOPs of the projections and the MLP for one token position, all layers."""
        d, hd = self.d_model, self.head_dim
        attn = d * self.heads * hd + 2 * d * self.kv_heads * hd + self.heads * hd * d
        return 2 * self.layers * (attn + 3 * d * self.d_ff)

    def attention_flops_per_key(self) -> int:
        """Forward FLOPs of scores and weighted sum for one (query position, visible key) pair, all layers."""
        return 2 * 2 * self.layers * self.heads * self.head_dim

    def head_flops_per_position(self) -> int:
        """Forward FLOPs of the output head (d_model → vocab) at one kept position."""
        return 2 * self.d_model * self.vocab


@dataclass(frozen=True)
class StepFlops:
    """Forward and backward FLOPs of one step by part (``linear``, ``attention``, ``head``), and the share of the
    linear work spent on padding positions (0..1)."""

    forward: Mapping[str, float]
    backward: Mapping[str, float]
    padding_share: float

    @property
    def total(self) -> float:
        return sum(self.forward.values()) + sum(self.backward.values())


def micro_batch_forward(shape: ModelShape, rows: int, width: int, prefix: int, kept: int) -> dict[str, float]:
    """Forward FLOPs of one micro-batch by part (see the module docstring for ``rows``, ``width``, ``prefix``,
    ``kept``)."""
    for name, v in (("rows", rows), ("width", width), ("prefix length", prefix), ("kept", kept)):
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    if kept > width:
        raise ValueError(f"kept ({kept}) cannot exceed width ({width})")
    positions = rows * width
    keys = rows * (prefix * width + width * (width + 1) // 2)  # Σ over positions t of (prefix + t + 1) keys
    return {"linear": float(positions * shape.linear_flops_per_position()),
            "attention": float(keys * shape.attention_flops_per_key()),
            "head": float(rows * kept * shape.head_flops_per_position())}


def step_flops(shape: ModelShape, micro_batches: Iterable[tuple[int, int, int]], prefix: int,
               tokens: int | None = None) -> StepFlops:
    """FLOPs of one training step made of ``micro_batches`` (``(rows, width, kept)`` each) against a prefix of
    ``prefix`` tokens. ``tokens``: the real (unpadded) student tokens of the step, for the padding share."""
    fwd = {"linear": 0.0, "attention": 0.0, "head": 0.0}
    positions = 0
    for rows, width, kept in micro_batches:
        for k, v in micro_batch_forward(shape, rows, width, prefix, kept).items():
            fwd[k] += v
        positions += rows * width
    bwd = {"linear": fwd["linear"], "attention": 2 * fwd["attention"], "head": fwd["head"]}
    pad = 0.0 if tokens is None or positions == 0 else max(0.0, 1 - tokens / positions)
    return StepFlops(forward=fwd, backward=bwd, padding_share=pad)


def matmul_flops(m: int, k: int, n: int) -> float:
    """FLOPs of an (m × k) @ (k × n) matmul."""
    return 2.0 * m * k * n
