"""Recall and answer-NLL of a memory (an STM buffer, with or without a cartridge prefix) on facts.

Recall criterion: the gold answer string appears in the greedy output (case-insensitive).
Per-query time is wall time of one greedy answer (seconds), on top of the already-cached memory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from stmltm_nb.memory.facts import Fact
from stmltm_nb.memory.stm import STMBuffer

QUESTION_KINDS = ("train", "heldout")


def answer_found(answer: str, output: str) -> bool:
    """Recall criterion: the gold answer appears in the model output (case-insensitive)."""
    return answer.strip().lower() in output.lower()


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


def evaluate_recall(buf: STMBuffer, facts: Sequence[Fact], kind: str = "train", max_new_tokens: int = 32,
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


MODES = ("no memory", "STM (all items)", "STM (own chunk, oracle)", "LTM (cartridge)", "LTM + residual STM")
RETENTION_QUESTION = "Tell me some general facts about the world."


def text_nll(buf: STMBuffer, text: str, question: str = RETENTION_QUESTION) -> float:
    """Mean NLL (nats/token) of ``text`` as the assistant's reply to ``question``, on top of ``buf``'s memory."""
    import torch

    from stmltm_nb.prompts import encode

    q_ids = encode(buf.tokenizer, buf.fmt.query(question))
    t_ids = encode(buf.tokenizer, text.strip())
    logits = buf.logits_for_ids(q_ids + t_ids)[0, len(q_ids) - 1 : -1].float()
    logp = torch.log_softmax(logits, -1)[torch.arange(len(t_ids)), torch.tensor(t_ids)]
    return float(-logp.mean())


def _rate(hits: Sequence[bool]) -> float:
    return sum(hits) / len(hits) if hits else float("nan")


def compare_memories(model, tokenizer, facts: Sequence[Fact], cartridge=None, residual: Sequence[Fact] = (),
                     chunk_size: int = 4, kinds: Sequence[str] = QUESTION_KINDS, max_new_tokens: int = 32,
                     first_question_only: bool = True, retention_text: str | None = None):
    """The STM-vs-LTM table: recall (with Wilson 95 % interval), answer NLL and seconds per query for each
    memory mode and question kind, asked about ``facts + residual`` (``recall``), split into the facts the
    cartridge was trained on (``recall_cart``) and the residual ones (``recall_resid``); plus retention rows (NLL of a general
    text, nats/token) for each mode. ``cartridge`` was trained on ``facts``; ``residual`` facts are newer items
    kept in STM. Returns a pandas DataFrame (one row per mode × kind)."""
    import pandas as pd

    from stmltm_nb.memory.facts import chunks, general_text
    from stmltm_nb.metrics.stats import wilson_interval

    everything = list(facts) + list(residual)
    memories: dict[str, STMBuffer | None] = {"no memory": STMBuffer(model, tokenizer)}
    memories["STM (all items)"] = STMBuffer(model, tokenizer)
    memories["STM (all items)"].extend([f.to_item() for f in everything])
    memories["STM (own chunk, oracle)"] = None  # built per chunk below
    if cartridge is not None:
        memories["LTM (cartridge)"] = cartridge.memory()
        memories["LTM + residual STM"] = cartridge.memory(residual=[f.to_item() for f in residual])
    rows = []
    for mode, buf in memories.items():
        for kind in kinds:
            if buf is None:
                parts = []
                for group in chunks(everything, chunk_size):
                    b = STMBuffer(model, tokenizer)
                    b.extend([f.to_item() for f in group])
                    parts.append(evaluate_recall(b, group, kind, max_new_tokens, first_question_only))
                hit_list = [o[3] for p in parts for o in p.outputs]
                total = len(hit_list)
                nll = sum(p.nll * p.total for p in parts) / total
                spq = sum(p.seconds_per_query * p.total for p in parts) / total
            else:
                r = evaluate_recall(buf, everything, kind, max_new_tokens, first_question_only)
                hit_list, total, nll, spq = [o[3] for o in r.outputs], r.total, r.nll, r.seconds_per_query
            hits = sum(hit_list)
            n_cart = sum(len(questions_for(f, kind)[:1] if first_question_only else questions_for(f, kind))
                         for f in facts)  # outputs come in fact order: the consolidated facts first
            lo, hi = wilson_interval(hits, total)
            rows.append({"mode": mode, "questions": kind, "recall": hits / total, "lo": lo, "hi": hi,
                         "recall_cart": _rate(hit_list[:n_cart]), "recall_resid": _rate(hit_list[n_cart:]),
                         "answer_nll": nll, "n_questions": total, "s_per_query": spq})
    text = retention_text or general_text()
    for mode, buf in memories.items():
        if buf is not None:
            rows.append({"mode": mode, "questions": "retention (general text NLL)", "recall": float("nan"),
                         "lo": float("nan"), "hi": float("nan"), "answer_nll": text_nll(buf, text),
                         "n_questions": 0, "s_per_query": float("nan")})
    return pd.DataFrame(rows)
