"""The student's training loop: Adam on the cartridge's trainable parameters (base model frozen) against the
teacher targets, with the recipe of one :class:`~stmltm_nb.memory.config.ConsolidationConfig`."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stmltm_nb.env import progress_bar
from stmltm_nb.memory.batching import length_groups, pick_batch, sample_residual, student_batch
from stmltm_nb.memory.cartridge import Cartridge
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.teacher import TeacherTargets

# the recipe fields recorded in a trained cartridge's stats
TRAIN_FIELDS = ("steps", "batch_size", "lr", "warmup", "gold_weight", "gold_boost", "seed", "residual_prob",
                "residual_min", "residual_max", "standins", "residual_own_prob", "hard_frac", "retention_frac", "retention_corpus",
                "retention_context", "practice_frac", "micro_batches", "dtype")
GUARD_KINDS = ("retention", "practice")  # rows about no consolidated item (they guard what must not change)
ROW_KINDS = ("fact", *GUARD_KINDS)


def row_kind(kind: str) -> str:
    """The training-row kind of an example of ``kind``: a guard kind, else ``"fact"`` (a question about an item)."""
    return kind if kind in GUARD_KINDS else "fact"


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # per step, nats/token
    seconds: float = 0.0
    steps: int = 0
    tokens_seen: int = 0  # student tokens processed (padding excluded)
    positions: int = 0  # student positions computed (padding included): 1 − tokens_seen/positions is the waste
    kind_losses: dict[str, list[float]] = field(default_factory=dict)  # per row kind, per step, nats/token


def distill_loss(model: Any, batch, per_row: bool = False, denom: Any = None) -> Any:
    """Soft cross-entropy (nats/token, weighted mean) of ``model`` (PEFT-wrapped) against the teacher targets.

    Logits are computed only at the positions that predict response tokens (``logits_to_keep``). With
    ``per_row`` it returns ``(loss, row_losses)``: the same weighted mean per batch row, detached (nats/token).
    ``denom``: the total token weight the weighted sum is divided by (default: this batch's); micro-batches of one
    step pass the step's total so that their losses (and gradients) add up to the whole batch's exactly.
    """
    import torch

    input_ids, mask, rows, cols, tids, tps, wts = batch
    keep = torch.unique(cols)
    logits = model(input_ids=input_ids, attention_mask=mask, logits_to_keep=keep).logits
    sel = torch.log_softmax(logits[rows, torch.searchsorted(keep, cols)].float(), dim=-1)
    ce = -(tps * sel.gather(-1, tids)).sum(-1)
    loss = (wts * ce).sum() / (wts.sum() if denom is None else denom)
    if not per_row:
        return loss
    n = input_ids.shape[0]
    num = torch.zeros(n, device=ce.device).index_add_(0, rows, (wts * ce).detach())
    den = torch.zeros(n, device=ce.device).index_add_(0, rows, wts.detach())
    return loss, (num / den.clamp_min(1e-12)).cpu()


def row_pools(tt: TeacherTargets, cfg: ConsolidationConfig) -> dict[str, list[int]]:
    """Example indices of ``tt`` by row kind: ``fact`` (questions about the items consolidated), ``retention``
    (generic prompts, base-model targets) and ``practice`` (practice facts read from residual STM). Raises a
    ``ValueError`` naming the config field when a share is configured but its rows are missing."""
    pools: dict[str, list[int]] = {kind: [] for kind in ROW_KINDS}
    for i, e in enumerate(tt.examples):
        pools[row_kind(e.kind)].append(i)
    if not pools["fact"]:
        raise ValueError("no training examples: no question is about any of the items")
    for kind, field_name in (("retention", "retention_frac"), ("practice", "practice_frac")):
        if getattr(cfg, field_name) > 0 and not pools[kind]:
            raise ValueError(f"ConsolidationConfig.{field_name} > 0 but the targets hold no {kind} rows")
    return pools


def train_cartridge(cart: Cartridge, tt: TeacherTargets, cfg: ConsolidationConfig, *,
                    residual: Sequence[tuple[str, list[int]]] = (), progress: bool = True) -> TrainResult:
    """Adam on the cartridge's trainable parameters only (base model frozen), ``cfg.steps`` steps of
    ``cfg.batch_size`` rows, linear warm-up then cosine decay to 10 % of ``cfg.lr``.

    Each batch mixes three kinds of rows (:meth:`ConsolidationConfig.row_counts`):

    - *fact rows*: a question about an item being consolidated, student = cartridge (+ stand-in residual items
      from ``residual`` in a ``residual_prob`` share of batches, ``residual_min``..``residual_max`` of them, never the asked
      item unless ``residual_own_prob``), teacher = the base model with the item's chunk in context;
      ``hard_frac`` of them drawn by loss-proportional sampling (:func:`pick_batch`);
    - *retention rows* (``retention_frac``): a generic prompt, student = cartridge, teacher = the base model with
      no memory (:func:`~stmltm_nb.memory.teacher.retention_targets`): Learning without Forgetting;
    - *practice rows* (``practice_frac``): a question about a practice fact that sits in residual STM after the
      cartridge among 0..``residual_max``-1 distractors from ``residual``, teacher = the base model with that
      fact in context: the student learns to read residual STM instead of answering from the cartridge.

    ``residual`` (:func:`~stmltm_nb.memory.batching.residual_pool`) must hold the practice facts' own ids when
    practice rows are used. Deterministic for a given ``seed``. Returns the per-step loss (nats/token) and the
    mean loss per row kind.
    """
    import torch

    if not isinstance(cfg, ConsolidationConfig):
        raise TypeError(f"train_cartridge needs a ConsolidationConfig, got {type(cfg).__name__}")
    if (cfg.residual_prob > 0 or cfg.practice_frac > 0) and not residual:
        raise ValueError("ConsolidationConfig.residual_prob or practice_frac > 0 needs a residual pool "
                         "(batching.residual_pool)")
    pools = row_pools(tt, cfg)
    counts = dict(zip(ROW_KINDS, cfg.row_counts()))
    steps, lr, warmup = cfg.steps, cfg.lr, cfg.warmup
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(cart.trainable_parameters(), lr=lr)

    def lr_at(s: int) -> float:
        if s < warmup:
            return lr * (s + 1) / warmup
        frac = (s - warmup) / max(1, steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    res = TrainResult()
    orders: dict[str, list[int]] = {kind: [] for kind in ROW_KINDS}
    ex_loss = torch.full((len(tt),), float("nan"))  # last-seen loss per example (nats/token)
    bar = progress_bar(steps, "train cartridge", progress)
    t0 = time.perf_counter()
    cart.peft_model.train()
    try:
        for s in range(steps):
            idx, extra = batch_rows(tt, cfg, pools, orders, residual, ex_loss, gen)
            for g in opt.param_groups:
                g["lr"] = lr_at(s)
            opt.zero_grad(set_to_none=True)
            loss, row_loss, tokens, positions = accumulate_step(cart, tt, cfg, idx, extra)
            ex_loss[idx] = row_loss
            if not math.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at step {s}; lower lr (now {lr})")
            opt.step()
            res.losses.append(loss)
            res.tokens_seen += tokens
            res.positions += positions
            start = 0
            for kind in ROW_KINDS:
                if counts[kind] and pools[kind]:
                    res.kind_losses.setdefault(kind, []).append(float(row_loss[start : start + counts[kind]].mean()))
                    start += counts[kind]
            bar.update(1)
            bar.set_postfix(loss=f"{res.losses[-1]:.3f}")
    finally:
        cart.peft_model.eval()
        bar.close()
    res.seconds = time.perf_counter() - t0
    res.steps = steps
    cart.record = cart.record.trained({
        **{k: getattr(cfg, k) for k in TRAIN_FIELDS}, "final_loss": res.losses[-1] if res.losses else None,
        "train_seconds": round(res.seconds, 2), "examples": len(pools["fact"]),
        "retention_examples": len(pools["retention"]), "practice_examples": len(pools["practice"])})
    return res


MICRO_BATCH_OVERHEAD = 16  # token-positions one more forward pass is priced at (length_groups; ~6 ms a position
# on 2 cores against a few tens of ms of per-pass work)


def accumulate_step(cart: Cartridge, tt: TeacherTargets, cfg: ConsolidationConfig, idx: Sequence[int],
                    extra: Sequence[Sequence[int]]) -> tuple[float, Any, int, int]:
    """Forward and backward of one step's rows in up to ``cfg.micro_batches`` length-grouped micro-batches
    (:func:`~stmltm_nb.memory.batching.length_groups`; fewer padded positions), gradients accumulated on the
    cartridge's parameters. The micro-batch losses share the step's token-weight total, so the gradient is the
    whole batch's up to float rounding. Returns the step's loss (nats/token), the per-row losses (batch order),
    the student tokens processed (padding excluded) and the positions computed (padding included)."""
    import torch

    head = len(cart.student_context_ids())
    lengths = [head + len(x) + len(tt.examples[i].ids) for i, x in zip(idx, extra)]
    groups = length_groups(lengths, cfg.micro_batches, MICRO_BATCH_OVERHEAD)
    batches = [student_batch(cart, tt, [idx[j] for j in g], cfg.gold_weight, cfg.gold_boost, [extra[j] for j in g])
               for g in groups]
    denom = sum(b[6].sum() for b in batches)
    row_loss = torch.empty(len(idx))
    total = 0.0
    for g, b in zip(groups, batches):
        with autocast(cart, cfg.dtype):
            loss, rl = distill_loss(cart.peft_model, b, per_row=True, denom=denom)
        if torch.isfinite(loss):
            loss.backward()
        total += loss.item()
        row_loss[g] = rl
    return total, row_loss, sum(int(b[1].sum()) for b in batches), sum(b[0].numel() for b in batches)


def autocast(cart: Cartridge, dtype: str) -> Any:
    """The student's compute context: ``torch.autocast`` in bfloat16 on the cartridge's device, or nothing for
    float32. The loss itself is taken in float32 (:func:`distill_loss` upcasts the logits)."""
    import contextlib

    import torch

    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=cart.peft_model.device.type, dtype=getattr(torch, dtype))


def batch_rows(tt: TeacherTargets, cfg: ConsolidationConfig, pools: dict[str, list[int]],
               orders: dict[str, list[int]], residual: Sequence[tuple[str, list[int]]], ex_loss: Any,
               gen: Any) -> tuple[list[int], list[list[int]]]:
    """One batch of ``cfg.row_counts()`` rows: example indices (fact rows, then retention, then practice; ``pools``
    from :func:`row_pools`) and what each row's student sees between the cartridge and the question (token ids).
    ``orders`` holds each pool's rest of the epoch (updated in place); ``ex_loss`` the last-seen loss per example
    (nats/token, NaN where unseen) for hard-example mining."""
    import torch

    counts = dict(zip(ROW_KINDS, cfg.row_counts()))
    idx, orders["fact"] = pick_batch(orders["fact"], pools["fact"], counts["fact"], gen, ex_loss, cfg.hard_frac)
    n_res = 0  # one count per batch: rows of equal length, no compute spent on padding
    if cfg.residual_prob > 0 and float(torch.rand((), generator=gen)) < cfg.residual_prob:
        n_res = int(torch.randint(cfg.residual_min, cfg.residual_max + 1, (1,), generator=gen))
    extra = [sample_residual(residual, tt.examples[i].item_id, n_res, gen, cfg.residual_own_prob) for i in idx]
    if counts["retention"]:
        ret, orders["retention"] = pick_batch(orders["retention"], pools["retention"], counts["retention"], gen)
        seen = ([sample_residual(residual, "", n_res, gen) for _ in ret] if cfg.retention_context == "standins"
                else [[] for _ in ret])  # no draw from gen otherwise: the measured recipe's batches stay as they were
        idx, extra = idx + ret, extra + seen
    if counts["practice"]:
        prac, orders["practice"] = pick_batch(orders["practice"], pools["practice"], counts["practice"], gen)
        n_ctx = int(torch.randint(1, cfg.residual_max + 1, (1,), generator=gen))  # the fact + distractors
        idx = idx + prac
        extra = extra + [sample_residual(residual, tt.examples[i].item_id, n_ctx, gen, own_prob=1.0) for i in prac]
    return idx, extra
