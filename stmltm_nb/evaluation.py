"""Recall and answer-NLL of a memory (an STM buffer, with or without a cartridge prefix) on facts.

Recall criterion: the gold answer string appears in the greedy output (case-insensitive).
Per-query time is wall time of one greedy answer (seconds), on top of the already-cached memory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from .facts import Fact, answer_found
from .stm import STMBuffer

QUESTION_KINDS = ("train", "heldout")


def questions_for(fact: Fact, kind: str) -> list[str]:
    """``train``: the two trained templates; ``heldout``: the paraphrase never trained on."""
    if kind == "train":
        return list(fact.train_questions)
    if kind == "heldout":
        return [fact.heldout_question]
    raise ValueError(f"question kind must be one of {QUESTION_KINDS}, got {kind!r}")


@dataclass
class RecallResult:
    recall: float  # fraction of questions answered correctly, in [0, 1]
    hits: int
    total: int
    nll: float  # mean answer NLL, nats per answer token
    seconds_per_query: float  # mean wall time of one greedy answer, seconds
    outputs: list[tuple[str, str, str, bool]]  # (question, gold, output, hit)


def evaluate_recall(buf: STMBuffer, facts: Sequence[Fact], kind: str = "train", max_new_tokens: int = 16,
                    first_question_only: bool = False, with_nll: bool = True) -> RecallResult:
    """Ask every fact's questions of ``kind`` against the memory in ``buf``; the buffer is not changed."""
    hits, total, nlls, times, outputs = 0, 0, [], [], []
    for f in facts:
        qs = questions_for(f, kind)
        for q in qs[:1] if first_question_only else qs:
            t0 = time.perf_counter()
            out = buf.answer(q, max_new_tokens=max_new_tokens)
            times.append(time.perf_counter() - t0)
            hit = answer_found(f.answer, out)
            hits += hit
            total += 1
            outputs.append((q, f.answer, out, hit))
            if with_nll:
                nlls.append(buf.answer_nll(q, f.answer))
    if total == 0:
        raise ValueError("no questions to evaluate")
    return RecallResult(hits / total, hits, total, sum(nlls) / len(nlls) if nlls else float("nan"),
                        sum(times) / len(times), outputs)


def spread(seq: Sequence, k: int) -> list:
    """``k`` elements spread evenly over ``seq`` (first and last included); all of it when k >= len."""
    if k >= len(seq):
        return list(seq)
    if k == 1:
        return [seq[0]]
    return [seq[round(i * (len(seq) - 1) / (k - 1))] for i in range(k)]
