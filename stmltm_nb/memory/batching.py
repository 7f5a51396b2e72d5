"""Student batches for context distillation: what the student sees (cartridge header, stand-in residual STM,
the question) and the per-token targets it is trained towards.

The student loss is cross-entropy against the teacher's top-k targets on response tokens only, averaged per
token (nats/token). ``gold_weight`` g mixes a hard target on the tokens of y_i inside the response (and on the
tokens where a fallback text leaves the teacher's top-1): target = (1-g)·teacher + g·one-hot. Batches are
right-padded with an attention mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stmltm_nb.memory.cartridge import Cartridge
from stmltm_nb.memory.items import STMItem
from stmltm_nb.memory.teacher import Example, TeacherTargets
from stmltm_nb.prompts import CHATML, ChatFormat, encode


def off_path(tt: TeacherTargets, i: int) -> Any:
    """Bool mask over example ``i``'s response tokens: True where the token is not the teacher's top-1, i.e.
    where a fallback response (the item's own text) leaves the path the teacher would have taken."""
    import torch

    e = tt.examples[i]
    resp = torch.tensor(e.ids[e.resp_start :])
    return tt.topk_ids[tt.offsets[i] : tt.offsets[i] + len(resp), 0] != resp


def collate(tt: TeacherTargets, idx: Sequence[int], pad_id: int, gold_weight: float = 0.0,
            gold_boost: float = 1.0, contexts: Sequence[Sequence[int]] | None = None):
    """Batch examples ``idx``: right-padded ids, attention mask, and per-response-token targets.

    ``contexts[b]`` (optional): token ids put before example b's query, i.e. what the student sees between
    its cartridge and the question (the LoRA header, residual items); the teacher targets are unchanged.
    Returns (input_ids [B,T], attention_mask [B,T], rows [R] (batch row), cols [R] (position predicting the
    token), topk_ids [R,k], target_p [R,k], weight [R]) where R counts response tokens in the batch.

    With ``gold_weight`` g > 0 the hard target (mixed in with weight g, token weighing ``gold_boost``, the others
    1) goes on the tokens of the gold answer *and* on every response token that is not the teacher's top-1:
    where the teacher missed y_i the response is the item's own text, and at the tokens where that text leaves
    the teacher's path (measured: "X *plays* an instrument called ..." where the teacher's top-1 is " is") the
    teacher's distribution points the student back to the teacher's wrong answer. Retention rows never get a
    hard target: on teacher-forced prose almost every token is off the teacher's top-1, and hard targets there
    would train the cartridge to recite the passages instead of leaving the base model's predictions alone.
    """
    import torch

    exs = [tt.examples[i] for i in idx]
    if contexts is not None:
        if len(contexts) != len(exs):
            raise ValueError(f"contexts has {len(contexts)} entries for {len(exs)} examples")
        exs = [Example(e.item_id, e.question, e.kind, list(c) + e.ids, e.resp_start + len(c), e.gold_mask)
               for e, c in zip(exs, contexts)]
    T = max(len(e.ids) for e in exs)
    input_ids = torch.full((len(exs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(exs), T), dtype=torch.long)
    rows, cols, tids, tps, wts = [], [], [], [], []
    for b, (i, e) in enumerate(zip(idx, exs)):
        input_ids[b, : len(e.ids)] = torch.tensor(e.ids)
        mask[b, : len(e.ids)] = 1
        n_resp = len(e.ids) - e.resp_start
        o = tt.offsets[i]
        ids_i, p_i = tt.topk_ids[o : o + n_resp].clone(), tt.topk_p[o : o + n_resp].clone()
        g = torch.tensor(e.gold_mask[:n_resp], dtype=torch.bool)
        if gold_weight > 0 and e.kind != "retention":  # retention rows match the base model, soft targets only
            resp = torch.tensor(e.ids[e.resp_start :])
            g = g | off_path(tt, i)  # where the item text replaced the teacher's answer
            if g.any():
                # put the gold token in the last top-k slot if absent, then mix in a one-hot on it
                present = ids_i == resp[:, None]
                absent = g & ~present.any(-1)
                ids_i[absent, -1] = resp[absent]
                p_i[absent, -1] = 0.0
                present = ids_i == resp[:, None]
                p_i[g] = (1 - gold_weight) * p_i[g] + gold_weight * present[g].float()
        wts.append(1.0 + (gold_boost - 1.0) * g.float())
        rows.append(torch.full((n_resp,), b))
        cols.append(torch.arange(e.resp_start - 1, len(e.ids) - 1))
        tids.append(ids_i)
        tps.append(p_i)
    return input_ids, mask, torch.cat(rows), torch.cat(cols), torch.cat(tids), torch.cat(tps), torch.cat(wts)


def pick_batch(order: list[int], pool: Sequence[int], batch_size: int, gen: Any,
               ex_loss: Any = None, hard_frac: float = 0.0) -> tuple[list[int], list[int]]:
    """Next batch of example indices and the rest of the epoch ``order``.

    Plain: the next ``batch_size`` of a shuffled pass over ``pool``. With ``hard_frac`` > 0 and a last-seen loss
    (``ex_loss``, nats/token, NaN where unseen) for every pool example, that share of the batch is drawn instead
    with probability proportional to the loss, without replacement (hard-example mining: the examples the
    cartridge still gets wrong, e.g. two facts of one relation it confuses, come back more often).
    """
    import torch

    check_fraction("hard_frac", hard_frac)
    if batch_size < 1 or not pool:
        raise ValueError(f"need batch_size >= 1 and a non-empty pool, got {batch_size} and {len(pool)} examples")
    n_hard = 0
    if hard_frac > 0 and ex_loss is not None:
        w = ex_loss[list(pool)]
        if not torch.isnan(w).any():
            n_hard = min(len(pool), int(round(hard_frac * batch_size)))
    hard: list[int] = []
    if n_hard:
        w = w.clamp_min(1e-6)
        hard = [pool[j] for j in torch.multinomial(w, n_hard, replacement=False, generator=gen).tolist()]
    need = batch_size - len(hard)
    if len(order) < need:
        order = order + [pool[i] for i in torch.randperm(len(pool), generator=gen).tolist()]
    return hard + order[:need], order[need:]


def student_batch(cart: Cartridge, tt: TeacherTargets, idx: Sequence[int], gold_weight: float = 0.0,
                  gold_boost: float = 1.0, residual_ids: Sequence[Sequence[int]] | None = None):
    """:func:`collate` for ``cart``'s student: each row starts with what the student sees before the question
    (:meth:`Cartridge.student_context_ids`, then ``residual_ids[b]`` if given), padded with the tokenizer's pad
    id (0 when it has none), on the cartridge's device."""
    pad_id = cart.tokenizer.pad_token_id if cart.tokenizer.pad_token_id is not None else 0
    head = cart.student_context_ids()
    extra = residual_ids if residual_ids is not None else [()] * len(idx)
    batch = collate(tt, idx, pad_id, gold_weight, gold_boost, [head + list(r) for r in extra])
    device = cart.peft_model.device
    return tuple(t.to(device) for t in batch) if str(device) != "cpu" else batch


def length_groups(lengths: Sequence[int], max_groups: int, overhead: int = 0) -> list[list[int]]:
    """Rows of one batch split into at most ``max_groups`` micro-batches of similar length (contiguous runs in
    length order) so that padded compute is least: the split minimising Σ (rows · longest row + ``overhead``) over
    the groups (token-positions; ``overhead`` prices one forward pass). Returns the row indices of each group; the
    rows of a group keep their batch order. One group when ``max_groups`` is 1."""
    if max_groups < 1:
        raise ValueError(f"max_groups must be >= 1, got {max_groups}")
    n = len(lengths)
    if n == 0:
        return []
    order = sorted(range(n), key=lambda i: (lengths[i], i))
    ls = [lengths[i] for i in order]
    inf = float("inf")
    # best[g][j]: least cost of the first j rows (length order) in g groups; cut[g][j] where the last group starts
    best = [[inf] * (n + 1) for _ in range(max_groups + 1)]
    cut = [[0] * (n + 1) for _ in range(max_groups + 1)]
    best[0][0] = 0.0
    for g in range(1, max_groups + 1):
        for j in range(1, n + 1):
            for i in range(j):
                c = best[g - 1][i] + (j - i) * ls[j - 1] + overhead
                if c < best[g][j]:
                    best[g][j], cut[g][j] = c, i
    g = min(range(1, max_groups + 1), key=lambda k: (best[k][n], k))
    groups, j = [], n
    while g > 0:
        i = cut[g][j]
        groups.append(sorted(order[i:j]))
        j, g = i, g - 1
    return [grp for grp in groups[::-1] if grp]


def residual_pool(tokenizer: Any, items: Sequence[STMItem], fmt: ChatFormat = CHATML) -> list[tuple[str, list[int]]]:
    """(item id, token ids as the item sits in STM) for each item: the filler :func:`train_cartridge` samples
    as stand-in residual STM."""
    return [(it.id, encode(tokenizer, fmt.item(it.text))) for it in items]


def sample_residual(pool: Sequence[tuple[str, list[int]]], exclude: str, n_items: int, gen: Any,
                    own_prob: float = 0.0) -> list[int]:
    """``n_items`` items of ``pool`` other than ``exclude`` (fewer if the pool is smaller), drawn without
    replacement, concatenated. With probability ``own_prob`` one of them is replaced by the ``exclude`` item
    itself, at a random position: the asked fact then sits in residual STM, where serving finds it too."""
    import torch

    others = [ids for iid, ids in pool if iid != exclude]
    pick = torch.randperm(len(others), generator=gen)[: max(0, n_items)].tolist()
    chosen = [others[j] for j in pick]
    own = [ids for iid, ids in pool if iid == exclude]
    if chosen and own and own_prob > 0 and float(torch.rand((), generator=gen)) < own_prob:
        chosen[int(torch.randint(0, len(chosen), (1,), generator=gen))] = own[0]
    return [t for ids in chosen for t in ids]


def check_fraction(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
