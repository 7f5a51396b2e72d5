"""One consolidation, end to end: STM items → questions → teacher targets → cartridge → trained φ.

Used by the ``stmltm`` commands, the controller and the notebooks, so every number they show comes from
the same code path. Times are wall-clock seconds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cartridge import Cartridge
from .distill import (
    TeacherTargets,
    TrainResult,
    build_queries,
    compute_teacher_targets,
    residual_pool,
    train_cartridge,
)
from .facts import Fact
from .models import cache_dir
from .stm import STMItem


@dataclass
class ConsolidationConfig:
    """Defaults measured on SmolLM2-135M with 64 shipped facts (see notebook 03 and ``stmltm measure``)."""

    p: int = 128  # cartridge tokens
    backend: str = "prefix"  # or "lora"
    init: str = "stm"
    chunk_size: int = 1  # STM items the teacher sees per chunk (q_ctx(1) = 1.00, q_ctx(2) = 0.50)
    k: int = 20  # teacher top-k
    n_self: int = 0  # self-written questions per item (on top of the shipped templates)
    steps: int = 400
    batch_size: int = 8  # below the measured noise scale (two-batch B_simple 23–33 examples, notebook 04)
    lr: float = 2e-2
    gold_weight: float = 1.0
    gold_boost: float = 4.0
    seed: int = 0
    lora_rank: int = 8
    residual_prob: float = 0.25  # share of batches with stand-in residual items before the question
    residual_max: int = 4  # at most this many such items
    residual_own_prob: float = 0.0  # share of those rows whose asked item is among them (0.5 measured: worse, README)
    hard_frac: float = 0.0  # share of each batch drawn by loss-proportional sampling (hard-example mining)


@dataclass
class Consolidation:
    cartridge: Cartridge
    targets: TeacherTargets
    train: TrainResult
    init_vector: Any  # trainable values before training (for DL(Δφ))
    seconds: dict[str, float] = field(default_factory=dict)  # questions, teacher, train, total (= c_upd)
    config: ConsolidationConfig = field(default_factory=ConsolidationConfig)


def templates_of(facts: Sequence[Fact]) -> dict[str, Sequence[str]]:
    """Training question templates per item id (held-out paraphrases are never included)."""
    return {f.id: f.train_questions for f in facts}


def _targets_cache(targets_cache: str | Path | None) -> str | Path | None:
    return Path(cache_dir()) / "teacher-targets" if targets_cache == "default" else targets_cache


def teacher_targets_for(model: Any, tokenizer: Any, items: Sequence[STMItem], templates: dict[str, Sequence[str]],
                        cfg: ConsolidationConfig, targets_cache: str | Path | None = "default",
                        progress: bool = False) -> TeacherTargets:
    """Questions and teacher targets for ``items`` as :func:`consolidate` makes them (same cache)."""
    queries = build_queries(model, tokenizer, items, templates, n_self=cfg.n_self, seed=cfg.seed)
    if not queries:
        raise ValueError("no training questions: items need templates or n_self > 0")
    return compute_teacher_targets(model, tokenizer, items, queries, cfg.chunk_size, cfg.k,
                                   cache_dir=_targets_cache(targets_cache), progress=progress)


def untrained_cartridge(model: Any, tokenizer: Any, items: Sequence[STMItem], cfg: ConsolidationConfig) -> Cartridge:
    """The cartridge :func:`consolidate` starts from (initialised from the items' STM text by default)."""
    stm_text = "".join(it.text.strip() + "\n" for it in items)
    return Cartridge.create(model, tokenizer, p=cfg.p, backend=cfg.backend, init=cfg.init, stm_text=stm_text,
                            lora_rank=cfg.lora_rank, seed=cfg.seed)


def consolidate(model: Any, tokenizer: Any, items: Sequence[STMItem], templates: dict[str, Sequence[str]],
                config: ConsolidationConfig | None = None, targets_cache: str | Path | None = "default",
                progress: bool = True, replay: Sequence[STMItem] = ()) -> Consolidation:
    """Train a cartridge on ``items`` (+ ``replay`` of items absorbed earlier) by context distillation.

    ``targets_cache="default"`` keeps teacher targets under the model cache folder, one file per chunk, so
    re-running a consolidation, or replaying absorbed items, skips the teacher for chunks already seen.
    Seconds: ``total`` is c_upd from scratch (cached chunks count their original teacher time), ``incurred``
    what this call paid.
    """
    cfg = config or ConsolidationConfig()
    all_items = list(replay) + list(items)
    if not all_items:
        raise ValueError("nothing to consolidate: no items")
    t0 = time.perf_counter()
    tt = teacher_targets_for(model, tokenizer, all_items, templates, cfg, targets_cache, progress)
    t2 = time.perf_counter()
    cart = untrained_cartridge(model, tokenizer, all_items, cfg)
    init_vec = cart.delta_vector().clone()
    res = train_cartridge(cart, tt, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                          gold_weight=cfg.gold_weight, gold_boost=cfg.gold_boost, seed=cfg.seed, progress=progress,
                          residual=residual_pool(tokenizer, all_items), residual_prob=cfg.residual_prob,
                          residual_max=cfg.residual_max, residual_own_prob=cfg.residual_own_prob,
                          hard_frac=cfg.hard_frac)
    t3 = time.perf_counter()
    teacher_s = tt.seconds  # what the teacher cost when computed (cached chunks report their original time)
    # self-written questions (n_self > 0) are timed inside teacher_wall; "questions" stays for old readers
    secs = {"questions": 0.0, "teacher": teacher_s, "teacher_wall": t2 - t0, "train": t3 - t2}
    secs["total"] = secs["questions"] + secs["teacher"] + secs["train"]  # c_upd of this update from scratch
    secs["incurred"] = secs["questions"] + secs["teacher_wall"] + secs["train"]  # paid now (cached chunks free)
    cart.meta["items"] = [it.id for it in all_items]
    cart.meta["stats"].update({"c_upd_seconds": round(secs["total"], 2), "teacher_seconds": round(teacher_s, 2)})
    return Consolidation(cart, tt, res, init_vec, secs, cfg)
