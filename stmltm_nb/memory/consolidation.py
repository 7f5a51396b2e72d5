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

from stmltm_nb.memory.batching import residual_pool
from stmltm_nb.memory.cartridge import Cartridge
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.facts import Fact, load_practice_facts, retention_prompts
from stmltm_nb.memory.questions import Query, build_queries
from stmltm_nb.memory.stm import STMItem
from stmltm_nb.memory.teacher import (
    TeacherTargets,
    compute_teacher_targets,
    concat_targets,
    retention_targets,
)
from stmltm_nb.memory.training import TrainResult, train_cartridge
from stmltm_nb.models import cache_dir, ensure_cache_writable


@dataclass
class Consolidation:
    cartridge: Cartridge
    targets: TeacherTargets
    train: TrainResult
    init_vector: Any  # trainable values before training (for DL(Δφ))
    seconds: dict[str, float] = field(default_factory=dict)  # teacher, teacher_guard, train, total (= c_upd)
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


def guard_targets(model: Any, tokenizer: Any, cfg: ConsolidationConfig, targets_cache: str | Path | None = "default",
                  progress: bool = False, practice: Sequence[Fact] | None = None,
                  retention: Sequence[str] | None = None) -> tuple[list[TeacherTargets], list[STMItem]]:
    """Teacher targets of the rows that guard what the cartridge should not change: retention rows (generic
    prompts, no memory) when ``cfg.retention_frac`` > 0 and practice rows (practice facts, each with itself in
    context) when ``cfg.practice_frac`` > 0; plus the practice facts as STM items (they go into the residual
    pool). Defaults: the shipped ``retention_prompts.txt`` and ``practice_facts.jsonl``. Cached like the fact rows,
    so they are paid once per model. Bad input (an empty corpus) raises before any teacher pass."""
    prompts = [] if cfg.retention_frac == 0 else list(retention if retention is not None else retention_prompts())
    if cfg.retention_frac > 0 and not [p for p in prompts if p and p.strip()]:
        raise ValueError("ConsolidationConfig.retention_frac > 0 but the retention corpus is empty")
    facts = [] if cfg.practice_frac == 0 else list(practice if practice is not None else load_practice_facts())
    if cfg.practice_frac > 0 and not facts:
        raise ValueError("ConsolidationConfig.practice_frac > 0 but there are no practice facts")
    cache, parts = _targets_cache(targets_cache), []
    if prompts:
        parts.append(retention_targets(model, tokenizer, prompts, cfg.k, cache_dir=cache, progress=progress))
    items = [f.to_item() for f in facts]
    if items:
        queries = [Query(f.id, q, "practice") for f in facts for q in f.train_questions]
        parts.append(compute_teacher_targets(model, tokenizer, items, queries, 1, cfg.k, cache_dir=cache,
                                             progress=progress))
    return parts, items


def consolidate(model: Any, tokenizer: Any, items: Sequence[STMItem], templates: dict[str, Sequence[str]],
                config: ConsolidationConfig, targets_cache: str | Path | None = "default",
                progress: bool = True, replay: Sequence[STMItem] = (), practice: Sequence[Fact] | None = None,
                retention: Sequence[str] | None = None) -> Consolidation:
    """Train a cartridge on ``items`` (+ ``replay`` of items absorbed earlier) by context distillation, with the
    guard rows of :func:`guard_targets` mixed in as ``config`` says.

    ``targets_cache="default"`` keeps teacher targets under the model cache folder, one file per chunk, so
    re-running a consolidation, or replaying absorbed items, skips the teacher for chunks already seen.
    Seconds: ``teacher`` (the items' targets) + ``train`` = ``total``, c_upd from scratch (cached chunks count
    their original teacher time); ``teacher_guard`` the guard rows' targets, paid once per model (cached) and
    not part of c_upd; ``incurred`` what this call paid.
    """
    cfg = config
    if not isinstance(cfg, ConsolidationConfig):
        raise TypeError(f"consolidate needs a ConsolidationConfig, got {type(cfg).__name__}")
    ensure_cache_writable(_targets_cache(targets_cache))  # an unwritable cache fails now, not after the teacher
    all_items = list(replay) + list(items)
    if not all_items:
        raise ValueError("nothing to consolidate: no items")
    t0 = time.perf_counter()
    guard, practice_items = guard_targets(model, tokenizer, cfg, targets_cache, progress, practice, retention)
    tt_items = teacher_targets_for(model, tokenizer, all_items, templates, cfg, targets_cache, progress)
    t2 = time.perf_counter()
    tt = concat_targets([tt_items, *guard])
    cart = untrained_cartridge(model, tokenizer, all_items, cfg)
    init_vec = cart.delta_vector().clone()
    res = train_cartridge(cart, tt, cfg, residual=residual_pool(tokenizer, all_items + practice_items),
                          progress=progress)
    t3 = time.perf_counter()
    secs = {"teacher": tt_items.seconds, "teacher_guard": sum(g.seconds for g in guard), "teacher_wall": t2 - t0,
            "train": t3 - t2}
    secs["total"] = secs["teacher"] + secs["train"]  # c_upd of this update from scratch
    secs["incurred"] = secs["teacher_wall"] + secs["train"]  # paid now (cached chunks free)
    cart.meta["items"] = [it.id for it in all_items]
    cart.meta["stats"].update({"c_upd_seconds": round(secs["total"], 2),
                               "teacher_seconds": round(tt_items.seconds, 2)})
    return Consolidation(cart, tt, res, init_vec, secs, cfg)
