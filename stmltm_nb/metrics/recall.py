"""Recall and answer-NLL of a memory (an STM buffer, with or without a cartridge prefix) on facts.

Recall criterion: the gold answer string appears in the greedy output (case-insensitive).
Per-query time is wall time of one greedy answer (seconds), on top of the already-cached memory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from stmltm_nb.memory.facts import Fact
from stmltm_nb.memory.stm import STMBuffer
from stmltm_nb.models import LoadedModel

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
    nlls: list[float] = field(default_factory=list)  # each question's answer NLL, nats/token (empty without it)


def evaluate_recall(buf: STMBuffer, facts: Sequence[Fact], kind: str = "train", max_new_tokens: int = 32,
                    first_question_only: bool = False, with_nll: bool = True, batch_size: int = 1) -> RecallResult:
    """Ask every fact's questions of ``kind`` against the memory in ``buf``; the buffer is not changed.
    ``batch_size`` > 1 answers that many at once (:meth:`~stmltm_nb.memory.stm.STMBuffer.answer_many`: the same
    greedy answers; ``seconds_per_query`` is then the batch's time shared evenly)."""
    asked = [(f, q) for f in facts for q in (questions_for(f, kind)[:1] if first_question_only
                                             else questions_for(f, kind))]
    if not asked:
        raise ValueError("no questions to evaluate")
    t0 = time.perf_counter()
    if batch_size > 1:
        texts = buf.answer_many([q for _, q in asked], max_new_tokens=max_new_tokens, batch_size=batch_size)
    else:
        texts = [buf.answer(q, max_new_tokens=max_new_tokens) for _, q in asked]
    seconds = (time.perf_counter() - t0) / len(asked)
    outputs = [(q, f.answer, out, answer_found(f.answer, out)) for (f, q), out in zip(asked, texts)]
    hits = sum(hit for *_, hit in outputs)
    nlls = [buf.answer_nll(q, f.answer) for f, q in asked] if with_nll else []
    return RecallResult(hits / len(asked), hits, len(asked), sum(nlls) / len(nlls) if nlls else float("nan"),
                        seconds, outputs, nlls)


def spread(seq: Sequence, k: int) -> list:
    """``k`` elements spread evenly over ``seq`` (first and last included); all of it when k >= len."""
    if k >= len(seq):
        return list(seq)
    if k == 1:
        return [seq[0]]
    return [seq[round(i * (len(seq) - 1) / (k - 1))] for i in range(k)]


RETENTION_QUESTION = "Tell me some general facts about the world."


def text_nll(buf: STMBuffer, text: str, question: str = RETENTION_QUESTION) -> float:
    """Mean NLL (nats/token) of ``text`` as the assistant's reply to ``question``, on top of ``buf``'s memory."""
    from stmltm_nb.prompts import encode

    return buf.continuation_nll(encode(buf.tokenizer, buf.fmt.query(question)), encode(buf.tokenizer, text.strip()))


def fact_buffer(lm: LoadedModel, facts: Sequence[Fact]) -> STMBuffer:
    """An STM holding ``facts`` (as items, in order)."""
    buf = STMBuffer(lm)
    buf.extend([f.to_item() for f in facts])
    return buf


def ask(memory, facts: Sequence[Fact], kind: str, mode: str, role: str, split: str | None = None,
        seed: int | None = None, max_new_tokens: int = 32, first_question_only: bool = True,
        with_nll: bool = False, batch_size: int = 1) -> list[dict]:
    """One record per question (see :mod:`stmltm_nb.metrics.comparison`): each fact's questions of ``kind``
    asked of ``memory`` (anything with ``answer``/``answer_nll``: an STM, a cartridge's memory, a retrieval
    memory). Training questions: the first template only unless ``first_question_only`` is false; held-out: every
    wording of ``split`` (the fact's single paraphrase without a split). ``batch_size`` > 1 answers that many
    questions at once where the memory can (:meth:`~stmltm_nb.memory.stm.STMBuffer.answer_many`; the same greedy
    answers): each record's ``s`` is then its batch's seconds shared evenly (throughput, not one query's latency)
    and the record says ``batch``."""
    asked = []
    for f in facts:
        qs = questions_for(f, kind, split=split) if split is not None else questions_for(f, kind)
        asked += [(f, j, q) for j, q in enumerate(qs[:1] if kind == "train" and first_question_only else qs)]
    batched = batch_size > 1 and hasattr(memory, "answer_many")
    out = []
    for i in range(0, len(asked), batch_size if batched else 1):
        chunk = asked[i:i + batch_size] if batched else asked[i:i + 1]
        t0 = time.perf_counter()
        texts = (memory.answer_many([q for _, _, q in chunk], max_new_tokens=max_new_tokens, batch_size=batch_size)
                 if batched else [memory.answer(chunk[0][2], max_new_tokens=max_new_tokens)])
        s = (time.perf_counter() - t0) / len(chunk)
        for (f, j, q), text in zip(chunk, texts):
            rec = {"mode": mode, "kind": kind, "fact": f.id, "relation": f.relation, "role": role, "seed": seed,
                   "w": j, "hit": int(answer_found(f.answer, text)), "s": s}
            if batched:
                rec["batch"] = batch_size
            if with_nll:
                rec["nll"] = memory.answer_nll(q, f.answer)
            out.append(rec)
    return out


def question_records(lm: LoadedModel, facts: Sequence[Fact], cartridges=None, residual: Sequence[Fact] = (),
                     split: str | None = None, chunk_size: int = 4, k: int = 4,
                     kinds: Sequence[str] = QUESTION_KINDS, modes: Sequence[str] | None = None,
                     max_new_tokens: int = 32, first_question_only: bool = True, with_nll: bool = False,
                     progress: bool = False, batch_size: int = 1) -> list[dict]:
    """Every question of the comparison, one record each (:mod:`stmltm_nb.metrics.comparison` turns them into the
    table). ``facts`` are the consolidated facts (role "cart"), ``residual`` the newer ones kept in STM (role
    "resid"). ``cartridges``: one cartridge or ``{training seed: cartridge}`` trained on ``facts``; without it
    the cartridge modes are skipped. ``modes``: a subset of :data:`~stmltm_nb.metrics.comparison.MODES` (default:
    all that apply). Memory modes: no memory; STM of every fact; STM + retrieval (BM25 top-``k`` of every fact);
    each fact asked with its own chunk of ``chunk_size`` facts in STM (oracle); the fact alone in STM (teacher);
    the cartridge; the cartridge + residual STM; the residual facts alone in STM. ``batch_size``: questions
    answered at once (:func:`ask`; 1, the default, times each query alone)."""
    from stmltm_nb.env import progress_bar
    from stmltm_nb.memory.facts import chunks
    from stmltm_nb.memory.retrieval import RetrievalMemory
    from stmltm_nb.metrics import comparison as C

    if cartridges is not None and not isinstance(cartridges, dict):
        cartridges = {None: cartridges}
    carts = cartridges or {}
    everything = list(facts) + list(residual)
    roles = {f.id: "cart" for f in facts} | {f.id: "resid" for f in residual}
    want = [m for m in C.MODES if modes is None or m in modes]
    if not carts:  # the residual-only row is the cartridge's baseline: asked without one only when named
        want = [m for m in want if m not in (C.LTM, C.SERVED) and (modes is not None or m != C.RESIDUAL_ONLY)]
    if not residual:
        want = [m for m in want if m != C.RESIDUAL_ONLY]
    unknown = set(modes or ()) - set(C.MODES)
    if unknown:
        raise ValueError(f"unknown memory modes {sorted(unknown)}; known: {list(C.MODES)}")
    kw = {"split": split, "max_new_tokens": max_new_tokens, "first_question_only": first_question_only,
          "with_nll": with_nll, "batch_size": batch_size}

    def run(memory, asked, mode, seed=None):
        recs = []
        for kind in kinds:
            for role in ("cart", "resid"):
                group = [f for f in asked if roles[f.id] == role]
                recs += ask(memory, group, kind, mode, role, seed=seed, **kw)
                bar.update(1)  # one (question kind, fact role) group of one memory: a few seconds
        return recs

    def per_chunk(mode, size):
        return [r for g in chunks(everything, size) for r in run(fact_buffer(lm, g), g, mode)]

    jobs = {C.NO_MEMORY: lambda: run(STMBuffer(lm), everything, C.NO_MEMORY),
            C.STM_ALL: lambda: run(fact_buffer(lm, everything), everything, C.STM_ALL),
            C.RETRIEVAL: lambda: run(RetrievalMemory(lm, [f.to_item() for f in everything], k=k),
                                     everything, C.RETRIEVAL),
            C.ORACLE: lambda: per_chunk(C.ORACLE, chunk_size),
            C.TEACHER: lambda: per_chunk(C.TEACHER, 1),
            C.LTM: lambda: [r for s, c in carts.items() for r in run(c.memory(), everything, C.LTM, s)],
            C.SERVED: lambda: [r for s, c in carts.items() for r in run(
                c.memory(residual=[f.to_item() for f in residual]), everything, C.SERVED, s)],
            C.RESIDUAL_ONLY: lambda: run(fact_buffer(lm, residual), list(residual),
                                         C.RESIDUAL_ONLY)}
    memories = {C.ORACLE: len(chunks(everything, chunk_size)), C.TEACHER: len(everything), C.LTM: len(carts),
                C.SERVED: len(carts)}  # memories each mode builds (one otherwise); the bar counts their groups
    out: list[dict] = []
    bar = progress_bar(sum(memories.get(m, 1) for m in want) * len(kinds) * 2, "questions by memory", progress)
    for mode in want:
        bar.set_postfix(mode=mode[:24])
        out += jobs[mode]()
    bar.close()
    return out


def compare_memories(lm: LoadedModel, facts: Sequence[Fact], cartridge=None, residual: Sequence[Fact] = (),
                     chunk_size: int = 4, kinds: Sequence[str] = QUESTION_KINDS, max_new_tokens: int = 32,
                     first_question_only: bool = True, split: str | None = None, k: int = 4,
                     progress: bool = False, with_nll: bool = False, n_boot: int = 2000):
    """The STM-vs-LTM table as a pandas DataFrame, one row per mode × kind
    (:func:`~stmltm_nb.metrics.comparison.comparison_rows` over :func:`question_records`): recall with its
    relation-clustered 95 % interval, split into the cartridge facts and the residual ones, as a fraction of the
    teacher, seconds per query and (``with_nll``) mean answer NLL in nats/token."""
    import pandas as pd

    from stmltm_nb.metrics.comparison import comparison_rows

    recs = question_records(lm, facts, cartridge, residual, split=split, chunk_size=chunk_size, k=k,
                            kinds=kinds, max_new_tokens=max_new_tokens, first_question_only=first_question_only,
                            with_nll=with_nll, progress=progress)
    return pd.DataFrame(comparison_rows(recs, split=split, n_boot=n_boot))


def retention_nll(memory, passages: Sequence[str], question: str = RETENTION_QUESTION) -> list[float]:
    """Mean NLL (nats/token) of each passage as the reply to ``question`` with ``memory`` in context."""
    return [text_nll(memory, p, question) for p in passages]


def check_passages(path=None) -> list[str]:
    """The retention *check* passages (``data/retention_check.txt``, separated by blank lines): everyday and
    general prose never used in training (the retention rows of training read ``retention_text.txt``)."""
    from stmltm_nb.memory.facts import retention_passages
    from stmltm_nb.shipped import data_dir

    return retention_passages(path if path is not None else data_dir() / "retention_check.txt")
