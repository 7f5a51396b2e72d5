"""Measurements on a real model: recall/loss curves, per-query cost, cartridge overhead, FLOPs, gradient signal,
description length. Times are wall-clock seconds (minimum over repeats, which is the least noisy statistic on a
shared machine); losses are nats per answer token; code lengths are bits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from stmltm_nb.memory.batching import student_batch
from stmltm_nb.memory.cartridge import Cartridge
from stmltm_nb.memory.facts import Fact
from stmltm_nb.memory.items import STMItem
from stmltm_nb.memory.stm import STMBuffer
from stmltm_nb.memory.teacher import TeacherTargets
from stmltm_nb.memory.training import distill_loss, row_kind
from stmltm_nb.metrics.compression import dl_quantized, nats_to_bits
from stmltm_nb.metrics.recall import evaluate_recall, spread
from stmltm_nb.metrics.signal import GradientSignal, noise_scale_two_batches
from stmltm_nb.metrics.stats import wilson_interval
from stmltm_nb.models import LoadedModel
from stmltm_nb.prompts import ChatFormat, encode

POSITIONS = ("start", "middle", "end")


def curve_plan(n: int, n_facts: int, per_position: int = 8, min_questions: int = 24,
               positions: Sequence[str] = POSITIONS) -> list[tuple[int, str, list[int]]]:
    """Which facts the recall curve asks at STM size ``n``: ``(window start, position, fact indices)`` rows.

    Every question at a size is distinct: positions whose slices would overlap are merged away (n = 1 has one
    position, n = 2 two), each position asks ``min(per_position, n // positions)`` facts, and when one buffer
    gives fewer than ``min_questions`` questions, further buffers of the *next* n facts (disjoint windows) are
    built until it does, as far as ``n_facts`` allows. Indices are into the fact list."""
    if n < 1 or n > n_facts:
        raise ValueError(f"STM size n={n} must be in [1, {n_facts}]")
    pos = list(positions)[: max(1, min(len(positions), n))]
    if len(pos) == 2 and "end" in positions:  # n = 2: start and end, not start and middle
        pos = [pos[0], "end"]
    k = max(1, min(per_position, n // len(pos)))
    windows = max(1, min(n_facts // n, -(-min_questions // (k * len(pos)))))
    plan = []
    for w in range(windows):
        start = w * n
        for p in pos:
            plan.append((start, p, [start + i for i in _position_slice(n, p, k)]))
    return plan


def _position_slice(n: int, position: str, k: int) -> list[int]:
    k = min(k, n)
    if position == "start":
        return list(range(k))
    if position == "end":
        return list(range(n - k, n))
    mid = n // 2
    lo = max(0, min(n - k, mid - k // 2))
    return list(range(lo, lo + k))


def recall_curve(lm: LoadedModel, facts: Sequence[Fact], sizes: Sequence[int], per_position: int = 8,
                 positions: Sequence[str] = POSITIONS, kind: str = "train", progress: bool = False,
                 min_questions: int = 24, batch_size: int = 1) -> list[dict[str, Any]]:
    """q_ctx(n) and L_ctx(n): STM of n consecutive facts; ask about facts at the start, middle and end of the
    buffer, every question distinct (:func:`curve_plan`: at small n several disjoint buffers, so that each size
    asks at least ``min_questions``). One row per (n, position) with hits, total, recall, Wilson 95 % interval,
    mean answer NLL (nats/token) and the ``facts`` asked (ids). ``progress``: a bar over the questions (it moves
    after each buffer's). ``batch_size``:
    questions answered at once (:func:`~stmltm_nb.metrics.recall.evaluate_recall`; the same answers)."""
    from stmltm_nb.env import progress_bar

    rows = []
    plans = {n: curve_plan(n, len(facts), per_position, min_questions, positions) for n in sorted(sizes)}
    bar = progress_bar(sum(len(idx) for plan in plans.values() for *_, idx in plan), f"STM recall ({kind}), questions",
                       progress)
    for n in sorted(sizes):
        bar.set_postfix(n=n)
        plan = plans[n]
        by_pos: dict[str, list] = {}  # position -> [(hits, nll sum, fact ids)] per buffer
        tokens = 0
        for start in sorted({s for s, _, _ in plan}):
            buf = STMBuffer(lm)
            buf.extend([f.to_item() for f in facts[start : start + n]])
            tokens = buf.n_tokens
            parts = [(pos, [facts[i] for i in idx]) for s, pos, idx in plan if s == start]
            # every question about this buffer at once (one question per fact), then split by position
            r = evaluate_recall(buf, [f for _, asked in parts for f in asked], kind, first_question_only=True,
                                batch_size=batch_size)
            if len(r.outputs) != sum(len(asked) for _, asked in parts):  # one question per fact, or the split breaks
                raise ValueError("recall curve: expected one question per fact asked")
            bar.update(len(r.outputs))
            at = 0
            for pos, asked in parts:
                got = slice(at, at + len(asked))
                at += len(asked)
                by_pos.setdefault(pos, []).append((sum(o[3] for o in r.outputs[got]), sum(r.nlls[got]),
                                                   [f.id for f in asked]))
        for pos, parts in by_pos.items():
            hits, total = sum(h for h, _, _ in parts), sum(len(ids) for _, _, ids in parts)
            nll = sum(x for _, x, _ in parts) / total
            lo, hi = wilson_interval(hits, total)
            rows.append({"n": n, "tokens": tokens, "position": pos, "hits": hits, "total": total,
                         "recall": hits / total, "lo": lo, "hi": hi, "nll": nll,
                         "facts": [i for _, _, ids in parts for i in ids]})
    bar.close()
    return rows


def pooled_recall(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pool the per-position rows of :func:`recall_curve` into one row per n (Wilson interval on the pool). A
    question counted twice at one size is an error: the fits treat questions as independent."""
    out = []
    for n in sorted({r["n"] for r in rows}):
        rs = [r for r in rows if r["n"] == n]
        ids = [i for r in rs for i in r.get("facts", [])]
        if len(ids) != len(set(ids)):
            raise ValueError(f"recall curve: a question is asked twice at n={n}; the pool would count it twice")
        hits, total = sum(r["hits"] for r in rs), sum(r["total"] for r in rs)
        lo, hi = wilson_interval(hits, total)
        nll = sum(r["nll"] * r["total"] for r in rs) / total
        out.append({"n": n, "tokens": rs[0]["tokens"], "hits": hits, "total": total, "recall": hits / total,
                    "lo": lo, "hi": hi, "nll": nll})
    return out


def _timed(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def ttft_cached(buf: STMBuffer, question: str, repeats: int = 3) -> float:
    """Time to first token (s) with the STM already on the cache: one forward of the query suffix."""
    ids = encode(buf.tokenizer, buf.fmt.query(question))
    return _timed(lambda: buf.logits_for_ids(ids), repeats)


def ttft_stateless(lm: LoadedModel, context_ids: list[int], question: str, fmt: ChatFormat, repeats: int = 3) -> float:
    """Time to first token (s) when the whole STM is prefilled with every query (no cache reuse)."""
    import torch

    ids = torch.tensor([context_ids + encode(lm.tokenizer, fmt.query(question))], device=lm.model.device)

    def run():
        with torch.no_grad():
            lm.model(input_ids=ids, logits_to_keep=1)

    return _timed(run, repeats)


def cost_curve(lm: LoadedModel, facts: Sequence[Fact], sizes: Sequence[int], repeats: int = 3,
               question: str = "Which river flows through Tounkur?", progress: bool = False) -> list[dict[str, Any]]:
    """c_ctx(n) in both regimes: cached (STM on a live cache) and stateless (STM re-prefilled every query).
    Includes n = 0 (no memory). Rows: n, tokens, ttft_cached_s, ttft_stateless_s, kv_bytes (fp32)."""
    from stmltm_nb.env import progress_bar
    from stmltm_nb.memory.cartridge import kv_bytes_per_token

    per_tok = kv_bytes_per_token(lm.model.config)
    rows = []
    buf = STMBuffer(lm)
    ns = sorted(set([0, *sizes]))
    bar = progress_bar(len(ns), "STM cost", progress)
    for n in ns:
        while buf.n < n:
            buf.append(facts[buf.n].to_item())
        rows.append({"n": n, "tokens": buf.n_tokens, "ttft_cached_s": ttft_cached(buf, question, repeats),
                     "ttft_stateless_s": ttft_stateless(lm, buf.context_ids(), question, buf.fmt, repeats),
                     "kv_bytes": buf.total_tokens * per_tok})
        bar.update(1)
    bar.close()
    return rows


def retrieval_cost_curve(lm: LoadedModel, facts: Sequence[Fact], sizes: Sequence[int], k: int = 4,
                         repeats: int = 3, question: str = "Which river flows through Tounkur?",
                         progress: bool = False) -> list[dict[str, Any]]:
    """c_ret(n): per-query cost of STM + retrieval with n notes in the BM25 index. Each query searches (``search_s``)
    and prefills the top-``k`` notes with the question, since the context changes with every question
    (``ttft_s``: stateless time to first token). ``excess_s`` = search + TTFT − TTFT with no memory, seconds."""
    from stmltm_nb.env import progress_bar
    from stmltm_nb.memory.retrieval import RetrievalMemory

    empty = STMBuffer(lm)
    t_none = ttft_stateless(lm, empty.context_ids(), question, empty.fmt, repeats)
    rows = []
    bar = progress_bar(len(sizes), "retrieval cost", progress)
    for n in sorted(sizes):
        mem = RetrievalMemory(lm, [f.to_item() for f in facts[:n]], k=k)
        search = _timed(lambda m=mem: m.retrieve(question), repeats)
        ctx = mem.context(question)
        ttft = ttft_stateless(lm, ctx.context_ids(), question, ctx.fmt, repeats)
        rows.append({"n": n, "k": min(k, n), "tokens": ctx.total_tokens, "search_s": search, "ttft_s": ttft,
                     "excess_s": search + ttft - t_none})
        bar.update(1)
    bar.close()
    return rows


def cartridge_overhead(cart: Cartridge, question: str = "Which river flows through Tounkur?", repeats: int = 3,
                       header_buf: STMBuffer | None = None) -> dict[str, float]:
    """r_cart: per-query TTFT with the cartridge minus TTFT with no memory (s), plus the cartridge's KV bytes."""
    mem = cart.memory()
    none = header_buf or STMBuffer(cart.lm)
    t_cart = ttft_cached(mem, question, repeats)
    t_none = ttft_cached(none, question, repeats)
    return {"ttft_cartridge_s": t_cart, "ttft_no_memory_s": t_none, "r_cart_s": max(0.0, t_cart - t_none),
            "cartridge_kv_bytes": cart.kv_bytes(), "p": cart.p}


def forward_flops(config: Any, n_tokens: int, n_context: int) -> float:
    """Analytic FLOPs of a forward pass over ``n_tokens`` new tokens attending to ``n_context`` earlier tokens
    (plus themselves): 2·(non-embedding params + lm head)·tokens + 4·layers·heads·head_dim·tokens·keys."""
    h = config.hidden_size
    head_dim = getattr(config, "head_dim", None) or h // config.num_attention_heads
    kv = config.num_key_value_heads * head_dim
    per_layer = h * config.num_attention_heads * head_dim + 2 * h * kv + config.num_attention_heads * head_dim * h
    per_layer += 3 * h * config.intermediate_size
    dense = 2 * (config.num_hidden_layers * per_layer + h * config.vocab_size) * n_tokens
    keys = n_context + (n_tokens + 1) / 2
    attn = 4 * config.num_hidden_layers * config.num_attention_heads * head_dim * n_tokens * keys
    return float(dense + attn)


def training_flops(config: Any, tt: TeacherTargets, steps: int, batch_size: int, p: int) -> dict[str, float]:
    """Analytic FLOPs of a cartridge run: teacher pass (one forward per example over its chunk context) and
    student steps (forward + input-gradient backward ≈ 2 × forward; frozen weights need no weight gradients)."""
    mean_len = float(np.mean([len(e.ids) for e in tt.examples]))
    teacher = sum(forward_flops(config, len(e.ids), 0) for e in tt.examples)  # context ≈ chunk, counted in ids
    student = 2 * forward_flops(config, int(round(mean_len)), p) * batch_size * steps
    return {"teacher_flops": float(teacher), "student_flops": float(student), "total_flops": float(teacher + student)}


# ----- learning signal ------------------------------------------------------------------------------------------
def per_item_gradient_signal(cart: Cartridge, tt: TeacherTargets, max_items: int | None = None,
                             n_boot: int = 1000) -> GradientSignal:
    """SNR and B_simple from per-item gradients of the distillation loss w.r.t. the cartridge's trainable
    parameters, at the current parameters, with the bootstrap lower bound of SNR_m over items
    (:func:`~stmltm_nb.metrics.signal.gradient_signal_from_gram`). An item's examples (its questions) are averaged
    first: items are the independent evidence units (guard rows are left out). The m gradients are held until their Gram matrix is formed
    (64 items of the default prefix cartridge: about 3 GB at the peak, float32 rows plus their float64 copy)."""
    import torch

    from stmltm_nb.metrics.signal import gradient_signal_from_gram

    by_item: dict[str, list[int]] = {}
    for i, e in enumerate(tt.examples):
        if row_kind(e.kind) == "fact":  # guard rows are about no consolidated item
            by_item.setdefault(e.item_id, []).append(i)
    groups = list(by_item.values())[: max_items or None]
    params = cart.trainable_parameters()
    rows: list[Any] = []
    for idx in groups:
        loss = distill_loss(cart.peft_model, student_batch(cart, tt, idx))
        grads = torch.autograd.grad(loss, params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]).float().cpu())
    g = torch.stack(rows).double()  # float64 products: the unbiased |E[g]|² subtracts nearly equal numbers
    return gradient_signal_from_gram((g @ g.T).numpy(), n_boot=n_boot)


def two_batch_noise_scale(cart: Cartridge, tt: TeacherTargets, b_small: int = 2, b_big: int = 16,
                          repeats: int = 3, seed: int = 0) -> dict[str, float]:
    """B_simple by the two-batch-size estimator (McCandlish et al. App. A), with |g_B|² averaged over
    ``repeats`` random batches of each size (fact examples, not items; guard rows left out)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    params = cart.trainable_parameters()
    pool = [i for i, e in enumerate(tt.examples) if row_kind(e.kind) == "fact"]

    def sq_norm(b: int) -> float:
        vals = []
        for _ in range(repeats):
            idx = [pool[j] for j in torch.randperm(len(pool), generator=gen)[:b].tolist()]
            grads = torch.autograd.grad(distill_loss(cart.peft_model, student_batch(cart, tt, idx)), params)
            vals.append(float(sum((g.double() ** 2).sum() for g in grads)))
        return float(np.mean(vals))

    g2, tr, b = noise_scale_two_batches(sq_norm(b_small), b_small, sq_norm(b_big), b_big)
    return {"G2": g2, "trace_cov": tr, "b_simple": b, "b_small": b_small, "b_big": b_big}


# ----- description length -----------------------------------------------------------------------------------------
def cartridge_dl(cart: Cartridge, init_vector, step_fraction: float = 0.125) -> dict[str, float]:
    """DL(Δφ) in bits: Δφ = trained − initial trainable values, quantised at step = ``step_fraction``·RMS(Δφ),
    entropy-coded. Also reports the naive fp16 size and the storage bytes of the whole cartridge."""
    delta = (cart.delta_vector() - init_vector.to(cart.delta_vector().device)).double().cpu().numpy()
    rms = float(np.sqrt(np.mean(delta**2))) or 1e-12
    out = dl_quantized(delta, step_fraction * rms)
    out.update({"step": step_fraction * rms, "step_fraction_of_rms": step_fraction, "params": int(delta.size),
                "delta_rms": rms, "storage_bytes_fp32": cart.kv_bytes()})
    return out


def item_code_bits(buf: STMBuffer, items: Sequence[STMItem]) -> list[float]:
    """Code length (bits) of each item's text under the memory in ``buf`` (its tokens after the first one)."""
    out = []
    for it in items:
        ids = encode(buf.tokenizer, buf.fmt.item(it.text))
        out.append(nats_to_bits(buf.continuation_nll(ids[:1], ids[1:], reduction="sum")))
    return out


__all__ = ["curve_plan", "retrieval_cost_curve", "recall_curve", "pooled_recall", "cost_curve", "cartridge_overhead", "forward_flops", "training_flops",
           "per_item_gradient_signal", "two_batch_noise_scale", "cartridge_dl", "item_code_bits", "spread",
           "ttft_cached", "ttft_stateless"]
