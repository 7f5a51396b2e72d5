"""The FLOP count of a training step (the roofline's numerator), checked against hand counts on small shapes and
against the real default model's parameter count. Torch-free."""

from __future__ import annotations

import pytest

from stmltm_nb.metrics.flops import ModelShape, matmul_flops, micro_batch_forward, step_flops

SMALL = ModelShape(layers=2, d_model=8, heads=2, kv_heads=1, head_dim=4, d_ff=16, vocab=10)


def test_the_per_position_counts_by_hand():
    # q 8x8, k 8x4, v 8x4, o 8x8 = 64 + 32 + 32 + 64 = 192; MLP 3 * 8 * 16 = 384; 2 FLOPs a multiply-add, 2 layers
    assert SMALL.linear_flops_per_position() == 2 * 2 * (192 + 384)
    assert SMALL.attention_flops_per_key() == 2 * 2 * 2 * 2 * 4  # scores + weighted sum, 2 layers, 2 heads of 4
    assert SMALL.head_flops_per_position() == 2 * 8 * 10


def test_a_micro_batch_counts_every_visible_key_and_only_the_kept_head_positions():
    f = micro_batch_forward(SMALL, rows=3, width=4, prefix=5, kept=2)
    assert f["linear"] == 3 * 4 * SMALL.linear_flops_per_position()
    # position t (0-based) sees 5 prefix keys and t + 1 of its own: 6 + 7 + 8 + 9 = 30 keys per row
    assert f["attention"] == 3 * 30 * SMALL.attention_flops_per_key()
    assert f["head"] == 3 * 2 * SMALL.head_flops_per_position()
    assert micro_batch_forward(SMALL, rows=0, width=4, prefix=5, kept=2) == {"linear": 0.0, "attention": 0.0,
                                                                            "head": 0.0}
    with pytest.raises(ValueError, match="kept"):
        micro_batch_forward(SMALL, rows=1, width=2, prefix=0, kept=3)
    with pytest.raises(ValueError, match="rows"):
        micro_batch_forward(SMALL, rows=-1, width=2, prefix=0, kept=1)


def test_a_step_adds_its_micro_batches_and_prices_backward_for_a_frozen_base():
    step = step_flops(SMALL, [(3, 4, 2), (1, 6, 2)], prefix=5, tokens=15)
    a, b = micro_batch_forward(SMALL, 3, 4, 5, 2), micro_batch_forward(SMALL, 1, 6, 5, 2)
    assert step.forward == {k: a[k] + b[k] for k in a}
    assert step.backward == {"linear": step.forward["linear"], "attention": 2 * step.forward["attention"],
                             "head": step.forward["head"]}
    assert step.total == sum(step.forward.values()) + sum(step.backward.values())
    assert step.padding_share == pytest.approx(1 - 15 / 18)
    assert step_flops(SMALL, [], prefix=0).total == 0


def test_the_linear_count_matches_the_default_models_parameters():
    """2 FLOPs per weight per position: the linear count equals 2 x (parameters outside embeddings and norms)."""
    smollm2 = ModelShape(layers=30, d_model=576, heads=9, kv_heads=3, head_dim=64, d_ff=1536, vocab=49152)
    per_layer = 576 * 576 * 2 + 2 * 576 * 192 + 3 * 576 * 1536  # q, o; k, v; gate, up, down
    assert smollm2.linear_flops_per_position() == 2 * 30 * per_layer
    weights = 30 * per_layer + 576 * 49152  # + the tied embedding / head: ≈ 134.5 M, the model's 135 M
    assert 130e6 < weights + 30 * 2 * 576 + 576 < 140e6
    assert matmul_flops(2, 3, 4) == 48
