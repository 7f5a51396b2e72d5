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


def questions_for(fact: Fact, kind: str, split: str | None = None) -> list[str]:
    """``train``: the two trained templates; ``heldout``: the paraphrase never trained on, or with ``split``
    ("tune", "report", "final") that split's held-out wordings (``Fact.heldout_for``; a fact without a bank, such
    as a note of yours, has its single held-out question). ``split`` does not change the ``train`` templates."""
    from stmltm_nb.memory.facts import HELDOUT_SPLITS

    if split is not None and split not in HELDOUT_SPLITS:
        raise ValueError(f"held-out split must be one of {HELDOUT_SPLITS}, got {split!r}")
    if kind == "train":
        return list(fact.train_questions)
    if kind == "heldout":
        return [fact.heldout_question] if split is None else list(fact.heldout_for(split))
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


RETENTION_QUESTION = "Tell me some general facts about the world."
RESIDUAL_ONLY = "STM (residual items only)"  # the baseline for the residual facts: no cartridge in front of them


def text_nll(buf: STMBuffer, text: str, question: str = RETENTION_QUESTION) -> float:
    """Mean NLL (nats/token) of ``text`` as the assistant's reply to ``question``, on top of ``buf``'s memory."""
    from stmltm_nb.prompts import encode

    return buf.continuation_nll(encode(buf.tokenizer, buf.fmt.query(question)), encode(buf.tokenizer, text.strip()))


def _rate(hits: Sequence[bool]) -> float:
    return sum(hits) / len(hits) if hits else float("nan")


def fact_buffer(model, tokenizer, facts: Sequence[Fact]) -> STMBuffer:
    """An STM holding ``facts`` (as items, in order)."""
    buf = STMBuffer(model, tokenizer)
    buf.extend([f.to_item() for f in facts])
    return buf


def _memories(model, tokenizer, facts: Sequence[Fact], cartridge, residual: Sequence[Fact]) -> dict:
    """Memory mode → (buffer, facts asked about). The oracle's buffer is None: it is built per chunk."""
    everything = list(facts) + list(residual)
    out = {"no memory": (STMBuffer(model, tokenizer), everything),
           "STM (all items)": (fact_buffer(model, tokenizer, everything), everything),
           "STM (own chunk, oracle)": (None, everything)}
    if cartridge is not None:
        out["LTM (cartridge)"] = (cartridge.memory(), everything)
        out["LTM + residual STM"] = (cartridge.memory(residual=[f.to_item() for f in residual]), everything)
        if residual:
            out[RESIDUAL_ONLY] = (fact_buffer(model, tokenizer, residual), list(residual))
    return out


def _ask(buf: STMBuffer | None, asked: Sequence[Fact], chunk_size: int, model, tokenizer,
         **kw) -> tuple[list[bool], float, float]:
    """(hit per question in fact order, mean answer NLL in nats/token, seconds per query) of one memory; with
    ``buf=None`` each chunk of ``chunk_size`` facts is asked against an STM of that chunk alone (the oracle)."""
    if buf is not None:
        r = evaluate_recall(buf, asked, **kw)
        return [o[3] for o in r.outputs], r.nll, r.seconds_per_query
    from stmltm_nb.memory.facts import chunks

    parts = [evaluate_recall(fact_buffer(model, tokenizer, g), g, **kw) for g in chunks(asked, chunk_size)]
    total = sum(p.total for p in parts)
    return ([o[3] for p in parts for o in p.outputs], sum(p.nll * p.total for p in parts) / total,
            sum(p.seconds_per_query * p.total for p in parts) / total)


def compare_memories(model, tokenizer, facts: Sequence[Fact], cartridge=None, residual: Sequence[Fact] = (),
                     chunk_size: int = 4, kinds: Sequence[str] = QUESTION_KINDS, max_new_tokens: int = 32,
                     first_question_only: bool = True, retention_text: str | None = None, progress: bool = False,
                     with_nll: bool = True):
    """The STM-vs-LTM table: recall (with Wilson 95 % interval), answer NLL and seconds per query for each
    memory mode and question kind, asked about ``facts + residual`` (``recall``), split into the facts the
    cartridge was trained on (``recall_cart``) and the residual ones (``recall_resid``); plus retention rows
    (NLL of a general text, nats/token) for each mode. ``cartridge`` was trained on ``facts``; ``residual`` facts
    are newer items kept in STM. With both, the row ``STM (residual items only)`` asks the residual facts alone
    against an STM of just them (its ``recall_cart`` is NaN). ``progress``: a bar over mode × kind; without
    ``with_nll`` the answer NLL is left out (NaN; about a third of the time). Returns a pandas DataFrame (one row
    per mode × kind).
    """
    import pandas as pd

    from stmltm_nb.env import progress_bar
    from stmltm_nb.memory.facts import general_text
    from stmltm_nb.metrics.stats import wilson_interval

    memories = _memories(model, tokenizer, facts, cartridge, residual)
    rows = []
    bar = progress_bar(len(memories) * len(kinds), "STM vs LTM", progress)
    for mode, (buf, asked) in memories.items():
        for kind in kinds:
            bar.set_postfix(mode=mode[:24], questions=kind)
            hit_list, nll, spq = _ask(buf, asked, chunk_size, model, tokenizer, kind=kind, with_nll=with_nll,
                                      max_new_tokens=max_new_tokens, first_question_only=first_question_only)
            n_cart = 0 if mode == RESIDUAL_ONLY else sum(  # outputs come in fact order: consolidated facts first
                len(questions_for(f, kind)[:1] if first_question_only else questions_for(f, kind)) for f in facts)
            hits, total = sum(hit_list), len(hit_list)
            lo, hi = wilson_interval(hits, total)
            rows.append({"mode": mode, "questions": kind, "recall": hits / total, "lo": lo, "hi": hi,
                         "recall_cart": _rate(hit_list[:n_cart]), "recall_resid": _rate(hit_list[n_cart:]),
                         "answer_nll": nll, "n_questions": total, "s_per_query": spq})
            bar.update(1)
    bar.close()
    text = retention_text or general_text()
    for mode, (buf, _) in memories.items():
        if buf is not None:
            rows.append({"mode": mode, "questions": "retention (general text NLL)", "recall": float("nan"),
                         "lo": float("nan"), "hi": float("nan"), "answer_nll": text_nll(buf, text),
                         "n_questions": 0, "s_per_query": float("nan")})
    return pd.DataFrame(rows)
