"""q̂_cart(n) from a short probe run (issue #15): train the consolidation recipe for a quarter of its steps (its
schedule compressed: warm-up, then cosine over the probe's steps), ask the probe cartridge each item's held-out
paraphrase, and move that recall by the log-odds offset calibrated on the tuning split
(:func:`~stmltm_nb.metrics.probe.probe_offset`, :func:`~stmltm_nb.metrics.probe.predict_q_cart`).

The probe shares its teacher targets with the full consolidation (same cache), so what it costs beyond the full
run is its training steps and 2n greedy answers (held-out paraphrase and first trained template per item). Recall criterion: :func:`~stmltm_nb.metrics.recall.answer_found`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.consolidation import consolidate, templates_of
from stmltm_nb.memory.facts import Fact
from stmltm_nb.metrics.probe import PROBE_SHARE
from stmltm_nb.metrics.recall import evaluate_recall


@dataclass
class RecallProbe:
    """One probe run on ``n`` items: held-out and trained-template recall of the probe cartridge (fractions, one
    question per item), its training steps and its seconds (training + answers; teacher targets cached)."""

    n: int
    probe_steps: int
    full_steps: int
    q_probe: float  # held-out paraphrases
    q_probe_train: float  # first trained template
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def probe_steps(cfg: ConsolidationConfig, share: float = PROBE_SHARE) -> int:
    """Optimiser steps of the probe: ``share`` of ``cfg.steps`` (at least the warm-up plus one)."""
    if not 0 < share <= 1:
        raise ValueError(f"probe share must be in (0, 1], got {share}")
    return max(cfg.warmup + 1, round(share * cfg.steps))


def run_recall_probe(model: Any, tokenizer: Any, facts: Sequence[Fact], cfg: ConsolidationConfig,
                     share: float = PROBE_SHARE, targets_cache: str | Path | None = "default",
                     progress: bool = False) -> RecallProbe:
    """Consolidate ``facts`` with ``cfg`` for :func:`probe_steps` steps and measure the probe cartridge's recall
    on each fact's held-out paraphrase (and first trained template). Bad input raises before any model work."""
    facts = list(facts)
    if not facts:
        raise ValueError("a recall probe needs at least one fact")
    if any(not f.heldout_question for f in facts):
        raise ValueError("every probed fact needs a held-out question")
    steps = probe_steps(cfg, share)
    run = consolidate(model, tokenizer, [f.to_item() for f in facts], templates_of(facts),
                      replace(cfg, steps=steps), targets_cache=targets_cache, progress=progress)
    t0 = time.perf_counter()
    ltm = run.cartridge.memory()
    held = evaluate_recall(ltm, facts, "heldout", first_question_only=True, with_nll=False).recall
    train = evaluate_recall(ltm, facts, "train", first_question_only=True, with_nll=False).recall
    return RecallProbe(len(facts), steps, cfg.steps, held, train, run.seconds["train"] + time.perf_counter() - t0)
