"""One consolidation, end to end: STM items → questions → teacher targets → cartridge → trained φ.

Used by the ``stmltm`` commands, the controller and the notebooks, so every number they show comes from
the same code path. Times are wall-clock seconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from stmltm_nb.memory.backends import BACKENDS
from stmltm_nb.memory.batching import residual_pool
from stmltm_nb.memory.cartridge import Cartridge
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.facts import Fact, load_practice_facts, retention_passages, retention_prompts
from stmltm_nb.memory.items import STMItem
from stmltm_nb.memory.questions import Query, build_queries
from stmltm_nb.memory.study_data import check_distractor_pool, distractor_items, training_wordings
from stmltm_nb.memory.teacher import (
    TeacherTargets,
    compute_teacher_targets,
    concat_targets,
    prose_targets,
    retention_targets,
)
from stmltm_nb.memory.training import TrainResult, train_cartridge
from stmltm_nb.models import LoadedModel, cache_dir, ensure_cache_writable


@dataclass
class Consolidation:
    cartridge: Cartridge
    targets: TeacherTargets
    train: TrainResult
    init_vector: Any  # trainable values before training (for DL(Δφ))
    seconds: dict[str, float] = field(default_factory=dict)  # teacher, teacher_guard, train, total (= c_upd)
    config: ConsolidationConfig = field(default_factory=ConsolidationConfig)


@dataclass(frozen=True)
class Lesson:
    """What a consolidation learns: the new ``items``, the training questions of every item by id (``templates``;
    replayed items' too, held-out paraphrases never) and the absorbed items it trains on again (``replay``)."""

    items: Sequence[STMItem]
    templates: Mapping[str, Sequence[str]]
    replay: Sequence[STMItem] = ()

    @classmethod
    def of_facts(cls, facts: Sequence[Fact], replay: Sequence[Fact] = (),
                 config: ConsolidationConfig | None = None) -> Lesson:
        """The lesson of ``facts`` (replaying ``replay``): their items and training questions (with ``config``, as
        many study wordings and "Tell me about" questions as it asks for, :func:`templates_of`)."""
        return cls([f.to_item() for f in facts], templates_of([*replay, *facts], config),
                   [f.to_item() for f in replay])


@dataclass(frozen=True)
class RunOptions:
    """How a consolidation runs, beside its recipe (:class:`ConsolidationConfig`): where teacher targets are cached
    (``"default"``: under the model cache folder; ``None``: nowhere), whether progress bars show, and the corpora of
    the guard rows (:func:`guard_targets`; ``None``: the shipped ones)."""

    targets_cache: str | Path | None = "default"
    progress: bool = True
    practice: Sequence[Fact] | None = None
    retention: Sequence[str] | None = None


def templates_of(facts: Sequence[Fact], config: ConsolidationConfig | None = None) -> dict[str, Sequence[str]]:
    """Training questions per item id (held-out paraphrases are never included): each fact's two templates, plus
    ``config.study_wordings`` study wordings and ``config.about_rows`` "Tell me about" questions
    (:func:`~stmltm_nb.memory.study_data.training_wordings`; a wording that is held out raises, naming the fact)."""
    if config is None or not (config.study_wordings or config.about_rows):
        return {f.id: f.train_questions for f in facts}
    return training_wordings(facts, config.study_wordings, config.about_rows)


def standin_items(items: Sequence[STMItem], config: ConsolidationConfig) -> list[STMItem]:
    """Where the stand-in residual items of training come from (``config.standins``): the items being
    consolidated ("items") or the distractor pool of facts never in a cartridge ("pool",
    ``data/distractor_facts.jsonl``; one that shares a name or text with ``items`` raises, naming both)."""
    if config.standins != "pool":
        return list(items)
    pool = distractor_items()
    check_distractor_pool(pool, items)
    return pool


def _targets_cache(targets_cache: str | Path | None) -> str | Path | None:
    return Path(cache_dir()) / "teacher-targets" if targets_cache == "default" else targets_cache


def teacher_targets_for(lm: LoadedModel, items: Sequence[STMItem], templates: Mapping[str, Sequence[str]],
                        cfg: ConsolidationConfig, targets_cache: str | Path | None = "default",
                        progress: bool = False) -> TeacherTargets:
    """Questions and teacher targets for ``items`` as :func:`consolidate` makes them (same cache)."""
    queries = build_queries(lm, items, templates, n_self=cfg.n_self, seed=cfg.seed)
    if not queries:
        raise ValueError("no training questions: items need templates or n_self > 0")
    return compute_teacher_targets(lm, items, queries, cfg.chunk_size, cfg.k,
                                   cache_dir=_targets_cache(targets_cache), progress=progress)


def untrained_cartridge(lm: LoadedModel, items: Sequence[STMItem], cfg: ConsolidationConfig) -> Cartridge:
    """The cartridge :func:`consolidate` starts from (initialised from the items' STM text by default), of the size
    its backend reads from ``cfg`` (prefix: ``p``; LoRA: ``lora_rank``)."""
    stm_text = "".join(it.text.strip() + "\n" for it in items)
    return Cartridge.create(lm, backend=cfg.backend, init=cfg.init, stm_text=stm_text, seed=cfg.seed,
                            **BACKENDS[cfg.backend].shape_from_config(cfg))


def guard_targets(lm: LoadedModel, cfg: ConsolidationConfig, targets_cache: str | Path | None = "default",
                  progress: bool = False, practice: Sequence[Fact] | None = None,
                  retention: Sequence[str] | None = None) -> tuple[list[TeacherTargets], list[STMItem]]:
    """Teacher targets of the rows that guard what the cartridge should not change: retention rows (no memory;
    ``cfg.retention_corpus``: the base model's own answers to generic prompts, everyday prose passages teacher-forced,
    or both) when ``cfg.retention_frac`` > 0 and practice rows (practice facts, each with itself in
    context) when ``cfg.practice_frac`` > 0; plus the practice facts as STM items (they go into the residual
    pool). Defaults: the shipped ``retention_prompts.txt``, ``retention_text.txt`` and ``practice_facts.jsonl``. Cached like the fact rows,
    so they are paid once per model. Bad input (an empty corpus) raises before any teacher pass."""
    prompts, passages, facts = _guard_inputs(cfg, practice, retention)
    cache, parts = _targets_cache(targets_cache), []
    if prompts:
        parts.append(retention_targets(lm, prompts, cfg.k, cache_dir=cache, progress=progress))
    if passages:
        parts.append(prose_targets(lm, passages, cfg.k, cache_dir=cache, progress=progress))
    items = [f.to_item() for f in facts]
    if items:
        queries = [Query(f.id, q, "practice") for f in facts for q in f.train_questions]
        parts.append(compute_teacher_targets(lm, items, queries, 1, cfg.k, cache_dir=cache,
                                             progress=progress))
    return parts, items


def _guard_inputs(cfg: ConsolidationConfig, practice: Sequence[Fact] | None,
                  retention: Sequence[str] | None) -> tuple[list[str], list[str], list[Fact]]:
    """The retention prompts, prose passages and practice facts the config asks for (the shipped ones by default).
    ``retention`` replaces the corpus ``cfg.retention_corpus`` names: the prompts ("prompts") or the passages
    ("prose"); with "both" it is refused (say which one it is). A share > 0 with an empty corpus raises a
    ``ValueError`` naming the field (called before any model work)."""
    corpus = cfg.retention_corpus
    use_prompts = cfg.retention_frac > 0 and corpus in ("prompts", "both")
    use_prose = cfg.retention_frac > 0 and corpus in ("prose", "both")
    if retention is not None and cfg.retention_frac > 0 and corpus == "both":
        raise ValueError("ConsolidationConfig.retention_corpus is 'both': a custom retention corpus needs 'prompts' "
                         "or 'prose'")
    custom = [t for t in retention if t and t.strip()] if retention is not None else None
    prompts = (custom if custom is not None else retention_prompts()) if use_prompts else []
    passages = (custom if custom is not None else retention_passages()) if use_prose else []
    if (use_prompts and not prompts) or (use_prose and not passages):
        raise ValueError(f"ConsolidationConfig.retention_frac > 0 but the retention corpus is empty ({corpus})")
    facts = [] if cfg.practice_frac == 0 else list(practice if practice is not None else load_practice_facts())
    if cfg.practice_frac > 0 and not facts:
        raise ValueError("ConsolidationConfig.practice_frac > 0 but there are no practice facts")
    return prompts, passages, facts


def consolidate(lm: LoadedModel, lesson: Lesson, config: ConsolidationConfig,
                options: RunOptions = RunOptions()) -> Consolidation:
    """Train a cartridge from scratch on the lesson's items (+ its ``replay`` of items absorbed earlier, all of them)
    by context distillation, with the guard rows of :func:`guard_targets` mixed in as ``config`` says.

    ``options.targets_cache="default"`` keeps teacher targets under the model cache folder, one file per chunk, so
    re-running a consolidation, or replaying absorbed items, skips the teacher for chunks already seen.
    Seconds: ``teacher`` (the items' targets) + ``train`` = ``total``, c_upd from scratch (cached chunks count
    their original teacher time); ``teacher_guard`` the guard rows' targets, paid once per model (cached) and
    not part of c_upd; ``incurred`` what this call paid.
    """
    _check_config(config)
    all_items = list(lesson.replay) + list(lesson.items)
    if not all_items:
        raise ValueError("nothing to consolidate: no items")
    _guard_inputs(config, options.practice, options.retention)  # bad input fails before the model runs
    standin_items(all_items, config)  # a distractor pool that overlaps the items fails here too
    ensure_cache_writable(_targets_cache(options.targets_cache))  # an unwritable cache fails now, not after the teacher
    cart = untrained_cartridge(lm, all_items, config)
    return _distil(lm, cart, replace(lesson, items=all_items, replay=()), config, options)


def update(lm: LoadedModel, committed: Cartridge | str | Path, lesson: Lesson, config: ConsolidationConfig,
           options: RunOptions = RunOptions()) -> Consolidation:
    """An incremental update: warm-start from the ``committed`` cartridge (an object or a saved folder), train
    ``config.update_steps`` steps (peak lr ``config.update_lr``) on the lesson's new items plus a seeded sample of
    ``config.replay_size`` absorbed items from its ``replay`` (so old facts are not forgotten). Teacher targets are
    computed only for what the cache has not seen (the replayed items' are cached from their own consolidation).
    Δφ = trained − committed φ.

    Raises :class:`~stmltm_nb.memory.cartridge.CartridgeError` before any teacher pass when the committed
    cartridge is corrupt, belongs to another base model, or has another backend or size (prefix: p; LoRA: rank)
    than ``config``; the committed cartridge is never modified (the update trains a clone)."""
    _check_config(config)
    items = list(lesson.items)
    if not items:
        raise ValueError("nothing to update: no new items")
    _guard_inputs(config, options.practice, options.retention)
    standin_items([*lesson.replay, *items], config)
    base = committed if isinstance(committed, Cartridge) else Cartridge.from_pretrained(committed, lm)
    _check_compatible(base, lm, config)
    ensure_cache_writable(_targets_cache(options.targets_cache))
    sample = replay_sample(lesson.replay, config.replay_size, config.seed)
    cart = base.clone()
    run = _distil(lm, cart, replace(lesson, items=items, replay=sample), config, options, warm=True)
    cart.record = cart.record.absorbing([*base.record.items, *(it.id for it in items)], update={
        "new_items": len(items), "replayed": len(sample), "parent_items": len(base.record.items)})
    return run


def replay_sample(replay: Sequence[STMItem], size: int, seed: int = 0) -> list[STMItem]:
    """``size`` of the absorbed items (all when fewer), drawn without replacement with ``seed``, in log order."""
    import random

    replay = list(replay)
    if len(replay) <= size:
        return replay
    keep = set(random.Random(seed).sample(range(len(replay)), size))
    return [it for i, it in enumerate(replay) if i in keep]


def _check_config(cfg: Any) -> None:
    if not isinstance(cfg, ConsolidationConfig):
        raise TypeError(f"consolidation needs a ConsolidationConfig, got {type(cfg).__name__}")


def _check_compatible(base: Cartridge, lm: LoadedModel, cfg: ConsolidationConfig) -> None:
    """A warm start needs the committed cartridge's base model, backend and size (its backend's config fields) to
    be this run's."""
    from stmltm_nb.memory.cartridge_files import CartridgeError
    from stmltm_nb.models import model_fingerprint

    if base.record.base_fingerprint != model_fingerprint(lm):
        raise CartridgeError("cannot warm-start: the committed cartridge was trained on another base model")
    base.impl.check_warm_start(base.record.shape, cfg)


def _distil(lm: LoadedModel, cart: Cartridge, lesson: Lesson, config: ConsolidationConfig, options: RunOptions,
            warm: bool = False) -> Consolidation:
    """Teacher targets for the lesson's replayed + new items (+ guard rows), then training of ``cart`` from where it
    is: ``config.steps`` steps, or with ``warm`` (an update) ``config.update_steps`` at peak lr ``config.update_lr``,
    the new items' examples repeated so that they make up about ``config.update_new_share`` of the fact rows (the
    replayed ones the rest)."""
    t0 = time.perf_counter()
    cfg = replace(config, lr=config.update_lr) if warm else config
    steps = config.update_steps if warm else config.steps
    items, templates, k = [*lesson.replay, *lesson.items], lesson.templates, len(lesson.replay)
    targets_cache, progress = options.targets_cache, options.progress
    guard, practice_items = guard_targets(lm, cfg, targets_cache, progress, options.practice, options.retention)
    if warm and 0 < k < len(items) and config.update_new_share > 0:
        old = teacher_targets_for(lm, items[:k], templates, cfg, targets_cache, progress)
        new = teacher_targets_for(lm, items[k:], templates, cfg, targets_cache, progress)
        tt_items = concat_targets([old, new])  # each example once: seconds and cache counts of this update
        share = config.update_new_share
        reps = max(1, round(share / max(1e-9, 1 - share) * len(old) / len(new)))
        tt = concat_targets([old, *[new] * reps, *guard])
        tt.cache_hits, tt.computed = tt_items.cache_hits, tt_items.computed
    else:
        tt_items = teacher_targets_for(lm, items, templates, cfg, targets_cache, progress)
        tt = concat_targets([tt_items, *guard])
        tt.cache_hits, tt.computed = tt_items.cache_hits, tt_items.computed  # the items' parts (guard rows apart)
    t2 = time.perf_counter()
    init_vec = cart.delta_vector().clone()
    res = train_cartridge(cart, tt, replace(cfg, steps=steps),
                          residual=residual_pool(lm.tokenizer, standin_items(items, cfg) + practice_items),
                          progress=progress)
    t3 = time.perf_counter()
    secs = {"teacher": tt_items.seconds, "teacher_guard": sum(g.seconds for g in guard), "teacher_wall": t2 - t0,
            "train": t3 - t2}
    secs["total"] = secs["teacher"] + secs["train"]  # c_upd of this update with no cache
    secs["incurred"] = secs["teacher_wall"] + secs["train"]  # paid now (cached chunks free)
    cart.record = cart.record.absorbing((it.id for it in items), c_upd_seconds=round(secs["total"], 2),
                                        teacher_seconds=round(tt_items.seconds, 2),
                                        teacher_cache_hits=tt_items.cache_hits, teacher_computed=tt_items.computed)
    return Consolidation(cart, tt, res, init_vec, secs, cfg)
