"""q̂_cart(n) from a short probe run (issue #15): measure a cheap stand-in for the consolidation's held-out recall
and move it by the log-odds offset calibrated on the tuning split (:func:`~stmltm_nb.metrics.probe.probe_offset`,
:func:`~stmltm_nb.metrics.probe.predict_q_cart`).

Three probe designs (:data:`~stmltm_nb.metrics.probe.PROBE_VARIANTS`), measured side by side by
``benchmarks/probe.py`` (notebook 09.2):

- ``"steps"`` (the default, the best of the three measured): all n items for a quarter of the steps (schedule
  compressed). At 64 items each training question is seen about three times (100 steps × 4 fact rows over 128
  examples); the probe's recall sits near 0 and says little there.
- ``"replica"``: a seeded sample of m = max(8, ⌈n/4⌉) of the n items, trained with the cartridge size and the steps
  scaled by m/n, so that each item gets the full run's cartridge tokens and training exposures, with fewer
  neighbours. At 32 and 64 items its 100 steps end mid-way through learning: its trained-template recall swings
  between splits.
- ``"teacher"``: no training: the base model with each item alone in context answers the held-out paraphrase
  (what distillation copies from; the oracle row of the comparison table). 0 steps, n answers.

The probe shares its teacher targets with the full consolidation (same cache), so what it costs beyond the full
run is its training steps and 2m greedy answers (held-out paraphrase and first trained template per probed item).
Recall criterion: :func:`~stmltm_nb.metrics.recall.answer_found`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from stmltm_nb.memory.backends import BACKENDS
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.consolidation import Lesson, RunOptions, consolidate
from stmltm_nb.memory.facts import Fact
from stmltm_nb.metrics.probe import PROBE_MIN_ITEMS, PROBE_SHARE, PROBE_VARIANTS
from stmltm_nb.metrics.recall import evaluate_recall, fact_buffer
from stmltm_nb.models import LoadedModel


@dataclass
class RecallProbe:
    """One probe run for ``n`` items: it trained ``probe_items`` of them with ``probe_p`` cartridge tokens for
    ``probe_steps`` steps; held-out and trained-template recall of the probe cartridge on those items (fractions,
    one question per item) and its seconds (training + answers; teacher targets cached)."""

    n: int
    probe_items: int
    probe_p: int
    probe_steps: int
    full_steps: int
    q_probe: float  # held-out paraphrases
    q_probe_train: float  # first trained template
    seconds: float
    variant: str = "steps"

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def probe_steps(cfg: ConsolidationConfig, share: float = PROBE_SHARE) -> int:
    """Optimiser steps of a run scaled to ``share`` of ``cfg.steps`` (at least the warm-up plus one)."""
    if not 0 < share <= 1:
        raise ValueError(f"probe share must be in (0, 1], got {share}")
    return max(cfg.warmup + 1, round(share * cfg.steps))


def probe_plan(n: int, cfg: ConsolidationConfig, share: float = PROBE_SHARE,
               variant: str = "steps") -> tuple[int, ConsolidationConfig]:
    """(items probed, the probe's config) for a job of ``n`` items. ``"steps"``: all n items, ``share`` of the
    steps; ``"replica"``: m = max(PROBE_MIN_ITEMS, ⌈share·n⌉) items (all when n is smaller), p and steps scaled by
    m/n (the backend's :meth:`~stmltm_nb.memory.backends.Backend.scaled_fields`: p ≥ 2 tokens for a prefix);
    ``"teacher"``: all n items, 0 steps (nothing trained). ``share`` = 1 is the full run itself."""
    if variant not in PROBE_VARIANTS:
        raise ValueError(f"probe variant must be one of {PROBE_VARIANTS}, got {variant!r}")
    if n < 1:
        raise ValueError(f"a probe needs n >= 1 items, got {n}")
    if variant == "teacher" and share < 1:
        return n, replace(cfg, steps=0)
    if variant == "steps" or share == 1:
        return n, replace(cfg, steps=probe_steps(cfg, share))
    m = min(n, max(PROBE_MIN_ITEMS, math.ceil(share * n)))
    return m, replace(cfg, **BACKENDS[cfg.backend].scaled_fields(cfg, m / n), steps=probe_steps(cfg, m / n))


def probe_sample(facts: Sequence[Fact], m: int, seed: int = 0) -> list[Fact]:
    """``m`` of ``facts`` (all when fewer), drawn without replacement with ``seed``, in their order."""
    facts = list(facts)
    if m >= len(facts):
        return facts
    keep = set(random.Random(seed).sample(range(len(facts)), m))
    return [f for i, f in enumerate(facts) if i in keep]


def run_recall_probe(lm: LoadedModel, facts: Sequence[Fact], cfg: ConsolidationConfig,
                     share: float = PROBE_SHARE, targets_cache: Any = "default", progress: bool = False,
                     variant: str = "steps") -> RecallProbe:
    """Consolidate the probe of :func:`probe_plan` and measure its cartridge's recall on each probed fact's held-out
    paraphrase (and first trained template); design ``"teacher"`` asks the base model with each fact alone in
    context instead. ``share=1`` measures the full consolidation the same way. Bad input raises before any model
    work."""
    facts = list(facts)
    if not facts:
        raise ValueError("a recall probe needs at least one fact")
    if any(not f.heldout_question for f in facts):
        raise ValueError("every probed fact needs a held-out question")
    m, pcfg = probe_plan(len(facts), cfg, share, variant)
    probed = probe_sample(facts, m, cfg.seed)
    if pcfg.steps == 0:
        return _teacher_probe(lm, probed, cfg)
    run = consolidate(lm, Lesson.of_facts(probed), pcfg, RunOptions(targets_cache, progress))
    t0 = time.perf_counter()
    ltm = run.cartridge.memory()
    held = evaluate_recall(ltm, probed, "heldout", first_question_only=True, with_nll=False).recall
    train = evaluate_recall(ltm, probed, "train", first_question_only=True, with_nll=False).recall
    return RecallProbe(len(facts), m, pcfg.p, pcfg.steps, cfg.steps, held, train,
                       run.seconds["train"] + time.perf_counter() - t0, variant)


def _teacher_probe(lm: LoadedModel, facts: list[Fact], cfg: ConsolidationConfig) -> RecallProbe:
    """Design ``"teacher"``: each fact alone in STM answers its held-out paraphrase and first trained template."""
    t0 = time.perf_counter()
    held = train = 0.0
    for f in facts:
        buf = fact_buffer(lm, [f])
        held += evaluate_recall(buf, [f], "heldout", first_question_only=True, with_nll=False).recall
        train += evaluate_recall(buf, [f], "train", first_question_only=True, with_nll=False).recall
    n = len(facts)
    return RecallProbe(n, n, 0, 0, cfg.steps, held / n, train / n, time.perf_counter() - t0, "teacher")
