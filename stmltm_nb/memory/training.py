"""The student's training loop: Adam on the cartridge's trainable parameters (base model frozen) against the
teacher targets, with the recipe of one :class:`~stmltm_nb.memory.config.ConsolidationConfig`."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stmltm_nb.env import progress_bar
from stmltm_nb.memory.batching import pick_batch, sample_residual, student_batch
from stmltm_nb.memory.cartridge import Cartridge
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.teacher import TeacherTargets

# the recipe fields recorded in a trained cartridge's stats
TRAIN_FIELDS = ("steps", "batch_size", "lr", "warmup", "gold_weight", "gold_boost", "seed", "residual_prob",
                "residual_max", "residual_own_prob", "hard_frac")


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # per step, nats/token
    seconds: float = 0.0
    steps: int = 0
    tokens_seen: int = 0  # student tokens processed (padding excluded)


def distill_loss(model: Any, batch, per_row: bool = False) -> Any:
    """Soft cross-entropy (nats/token, weighted mean) of ``model`` (PEFT-wrapped) against the teacher targets.

    Logits are computed only at the positions that predict response tokens (``logits_to_keep``). With
    ``per_row`` it returns ``(loss, row_losses)``: the same weighted mean per batch row, detached (nats/token).
    """
    import torch

    input_ids, mask, rows, cols, tids, tps, wts = batch
    keep = torch.unique(cols)
    logits = model(input_ids=input_ids, attention_mask=mask, logits_to_keep=keep).logits
    sel = torch.log_softmax(logits[rows, torch.searchsorted(keep, cols)].float(), dim=-1)
    ce = -(tps * sel.gather(-1, tids)).sum(-1)
    loss = (wts * ce).sum() / wts.sum()
    if not per_row:
        return loss
    n = input_ids.shape[0]
    num = torch.zeros(n).index_add_(0, rows, (wts * ce).detach())
    den = torch.zeros(n).index_add_(0, rows, wts.detach())
    return loss, num / den.clamp_min(1e-12)


def train_cartridge(cart: Cartridge, tt: TeacherTargets, cfg: ConsolidationConfig, *,
                    residual: Sequence[tuple[str, list[int]]] = (), example_idx: Sequence[int] | None = None,
                    progress: bool = True) -> TrainResult:
    """Adam on the cartridge's trainable parameters only (base model frozen), ``cfg.steps`` steps of
    ``cfg.batch_size`` examples, linear warm-up then cosine decay to 10 % of ``cfg.lr``.

    ``hard_frac``: share of each batch drawn by loss-proportional sampling once every example has been seen
    (:func:`pick_batch`); the rest is a shuffled pass, so every example keeps coming back.

    Residual-aware training: with probability ``residual_prob`` a batch's student sequences each get r items
    from ``residual`` (see :func:`residual_pool`; never the asked item; r uniform in 1..``residual_max``, one r
    per batch so rows stay equally long) between the cartridge and the question, as "LTM + residual STM"
    serves it; the teacher targets stay those of the teacher with the item's own chunk. Without it, items
    after the cartridge were never seen in training and answers drift to them. With only *other* items there,
    the student learns to ignore residual STM (measured: residual facts 0.00 in "LTM + residual STM");
    ``residual_own_prob`` puts the asked item itself among them in that share of rows, so the student also
    learns to read residual STM (the teacher had that item in context, so its targets still apply).

    Deterministic for a given ``seed``. Returns the per-step loss history (nats/token).
    """
    import torch

    if not isinstance(cfg, ConsolidationConfig):
        raise TypeError(f"train_cartridge needs a ConsolidationConfig, got {type(cfg).__name__}")
    if cfg.residual_prob > 0 and not residual:
        raise ValueError("ConsolidationConfig.residual_prob > 0 needs a residual pool (batching.residual_pool)")
    steps, batch_size, lr, warmup, seed = cfg.steps, cfg.batch_size, cfg.lr, cfg.warmup, cfg.seed
    pool = list(example_idx) if example_idx is not None else list(range(len(tt)))
    if not pool:
        raise ValueError("no training examples")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    params = cart.trainable_parameters()
    opt = torch.optim.Adam(params, lr=lr)

    def lr_at(s: int) -> float:
        if s < warmup:
            return lr * (s + 1) / warmup
        frac = (s - warmup) / max(1, steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    res = TrainResult()
    order: list[int] = []
    ex_loss = torch.full((len(tt),), float("nan"))  # last-seen loss per example (nats/token)
    bar = progress_bar(steps, "train cartridge", progress)
    t0 = time.perf_counter()
    cart.peft_model.train()
    try:
        for s in range(steps):
            idx, order = pick_batch(order, pool, batch_size, gen, ex_loss, cfg.hard_frac)
            n_res = 0  # one count per batch: rows of equal length, no compute spent on padding
            if cfg.residual_prob > 0 and float(torch.rand((), generator=gen)) < cfg.residual_prob:
                n_res = int(torch.randint(1, cfg.residual_max + 1, (1,), generator=gen))
            extra = [sample_residual(residual, tt.examples[i].item_id, n_res, gen,
                                     cfg.residual_own_prob) for i in idx]
            batch = student_batch(cart, tt, idx, cfg.gold_weight, cfg.gold_boost, extra)
            for g in opt.param_groups:
                g["lr"] = lr_at(s)
            loss, row_loss = distill_loss(cart.peft_model, batch, per_row=True)
            ex_loss[idx] = row_loss
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at step {s}; lower lr (now {lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            res.losses.append(loss.item())
            res.tokens_seen += int(batch[1].sum())
            bar.update(1)
            bar.set_postfix(loss=f"{res.losses[-1]:.3f}")
    finally:
        cart.peft_model.eval()
        bar.close()
    res.seconds = time.perf_counter() - t0
    res.steps = steps
    cart.meta["stats"] = {**{k: getattr(cfg, k) for k in TRAIN_FIELDS},
                          "final_loss": res.losses[-1] if res.losses else None,
                          "train_seconds": round(res.seconds, 2), "examples": len(pool)}
    return res
