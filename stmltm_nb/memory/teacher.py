"""Teacher targets for context distillation.

Teacher: the frozen model with a chunk of STM items in context (``chunk_size`` consecutive items holding the
asked item). For each (item, question):

1. the teacher answers greedily with its chunk in context (the response, ended by ``<|im_end|>``); if the item
   has a gold answer y_i that the response misses, the item's own text is used as response instead;
2. the teacher's top-k (default 20) next-token probabilities on every response token are stored, renormalised
   over the top-k (the tail mass is dropped, never collapsed to top-1).

Teacher targets are computed once and cached (in memory and, with ``cache_dir``, on disk as safetensors keyed
by a hash of everything they depend on, one file per chunk), so each training step runs the student only.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stmltm_nb.env import progress_bar
from stmltm_nb.io import atomic_write_bytes
from stmltm_nb.memory.facts import chunks
from stmltm_nb.memory.items import STMItem
from stmltm_nb.memory.questions import Query
from stmltm_nb.memory.stm import STMBuffer
from stmltm_nb.models import LoadedModel, model_fingerprint
from stmltm_nb.prompts import CHATML, DEFAULT_HEADER, ChatFormat, encode


@dataclass
class Example:
    """One student sequence: query suffix + response tokens, with teacher targets on the response."""

    item_id: str
    question: str
    kind: str
    ids: list[int]
    resp_start: int  # index in ids of the first response token
    gold_mask: list[int]  # per response token: 1 if it belongs to the gold answer y_i


@dataclass
class TeacherTargets:
    """Teacher targets for a list of examples: top-k token ids and renormalised probabilities per response
    token, stacked over all examples (``offsets[i]`` is example i's first row)."""

    examples: list[Example]
    topk_ids: Any  # LongTensor [N_tokens, k]
    topk_p: Any  # FloatTensor [N_tokens, k]
    offsets: list[int]
    seconds: float = 0.0  # wall time spent computing them (0 when read from cache)
    from_cache: bool = False
    cache_hits: int = 0  # parts (chunks) read from the disk cache
    computed: int = 0  # parts the teacher had to compute

    def __len__(self) -> int:
        return len(self.examples)


def topk_targets(logits: Any, k: int) -> tuple[Any, Any]:
    """The teacher's top-``k`` token ids and their probabilities renormalised to sum to 1, per position, on the CPU
    (targets are cached and collated there). ``logits`` [T, vocab] (float)."""
    import torch

    top = torch.topk(torch.softmax(logits, dim=-1), k, dim=-1)
    return top.indices.cpu(), (top.values / top.values.sum(-1, keepdim=True)).cpu()


def _gold_token_mask(tokenizer: Any, response: str, gold: str | None, n_tokens: int) -> list[int]:
    mask = [0] * n_tokens
    if not gold:
        return mask
    start = response.lower().find(gold.strip().lower())
    if start < 0:
        return mask
    end = start + len(gold.strip())
    enc = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
    for j, (a, b) in enumerate(enc["offset_mapping"][:n_tokens]):
        if a < end and b > start:
            mask[j] = 1
    return mask


def targets_key(lm: LoadedModel, items: Sequence[STMItem], queries: Sequence[Query], chunk_size: int, k: int,
                header: str) -> str:
    """Hash of everything teacher targets depend on (model, items, questions, chunking, k, header)."""
    h = hashlib.sha256()
    h.update(model_fingerprint(lm).encode())
    h.update(json.dumps([[it.id, it.text, it.answer] for it in items]).encode())
    h.update(json.dumps([[q.item_id, q.question, q.kind] for q in queries]).encode())
    h.update(f"{chunk_size}|{k}|{header}|v1".encode())
    return h.hexdigest()[:24]


def compute_teacher_targets(lm: LoadedModel, items: Sequence[STMItem], queries: Sequence[Query],
                            chunk_size: int = 4, k: int = 20, header: str = DEFAULT_HEADER,
                            fmt: ChatFormat = CHATML, cache_dir: str | Path | None = None,
                            max_new_tokens: int = 32, progress: bool = False) -> TeacherTargets:
    """Run the teacher once per chunk and question. With ``cache_dir`` each chunk's targets are cached on disk
    on their own (keyed by that chunk's items and questions), so a later consolidation that replays absorbed
    items pays the teacher only for the new chunks."""

    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if not 1 <= k <= 1000:
        raise ValueError(f"k must be in [1, 1000], got {k}")
    by_item: dict[str, list[Query]] = {}
    for q in queries:
        by_item.setdefault(q.item_id, []).append(q)
    parts: list[TeacherTargets] = []
    bar = progress_bar(len(queries), "teacher targets", progress)
    for group in chunks(list(items), chunk_size):
        group_q = [q for it in group for q in by_item.get(it.id, [])]
        if not group_q:
            continue
        key = targets_key(lm, group, group_q, chunk_size, k, header)
        parts.append(_cached(cache_dir, f"teacher-{key}",
                             lambda g=group: _teacher_chunk(lm, g, by_item, k, header, fmt, max_new_tokens)))
        bar.update(len(group_q))
    bar.close()
    return concat_targets(parts)


def _teacher_chunk(lm: LoadedModel, group: Sequence[STMItem], by_item: dict[str, list[Query]], k: int, header: str,
                   fmt: ChatFormat, max_new_tokens: int) -> TeacherTargets:
    """Teacher targets for the questions about one chunk of items, with that chunk in context."""
    rows = [(q, it) for it in group for q in by_item.get(it.id, [])]
    return _teacher_rows(lm, group, rows, k, header, fmt, max_new_tokens)


def _teacher_rows(lm: LoadedModel, context: Sequence[STMItem], rows: Sequence[tuple[Query, STMItem | None]], k: int,
                  header: str, fmt: ChatFormat, max_new_tokens: int) -> TeacherTargets:
    """Teacher targets with ``context`` in STM for each (question, item it is about or None): the teacher's
    greedy response (or, when the item's gold answer is missing from it, the item's own text), and the teacher's
    top-k distribution along it."""
    import torch

    t0 = time.perf_counter()
    tokenizer = lm.tokenizer
    end_id = tokenizer.convert_tokens_to_ids(fmt.end)
    examples: list[Example] = []
    rows_ids, rows_p = [], []
    teacher = STMBuffer(lm, header=header, fmt=fmt)
    teacher.extend([STMItem(text=it.text, id=it.id) for it in context])
    for q, it in rows:
        gen_ids, gen_logits = teacher.generate(q.question, max_new_tokens, keep_logits=True)
        response = tokenizer.decode(gen_ids, skip_special_tokens=True).strip()
        q_ids = encode(tokenizer, fmt.query(q.question))
        clean = bool(gen_ids) and gen_ids == encode(tokenizer, response) and len(gen_logits) == len(gen_ids) + 1
        answer = it.answer if it is not None else None
        if answer and answer.strip().lower() not in response.lower():
            response, clean = it.text.strip(), False
        r_ids = encode(tokenizer, response) + [end_id]
        if clean:  # the generation pass already produced the teacher's distributions
            logits = gen_logits.float()
        else:
            logits = teacher.logits_for_ids(q_ids + r_ids)[0, len(q_ids) - 1 : -1].float()
        ids, p = topk_targets(logits, k)
        rows_ids.append(ids)
        rows_p.append(p)
        gold = _gold_token_mask(tokenizer, response, answer, len(r_ids) - 1) + [0]
        examples.append(Example(q.item_id, q.question, q.kind, q_ids + r_ids, len(q_ids), gold))
    return concat_targets([TeacherTargets(examples, torch.cat(rows_ids), torch.cat(rows_p), [],
                                           time.perf_counter() - t0)])


RETENTION_ID = "retention:"  # item-id prefix of retention rows (they are about no item)


def retention_targets(lm: LoadedModel, prompts: Sequence[str], k: int = 20, header: str = DEFAULT_HEADER,
                      fmt: ChatFormat = CHATML, cache_dir: str | Path | None = None, max_new_tokens: int = 32,
                      progress: bool = False) -> TeacherTargets:
    """Retention rows (Learning without Forgetting): the base model's own greedy answer to each generic prompt,
    with *no* memory in context, and its top-k along it. Trained on, they pull the student (model + cartridge)
    back to the base model wherever the items do not matter. Cached on disk like the fact rows (one file)."""
    prompts = [p.strip() for p in prompts if p and p.strip()]
    if not prompts:
        raise ValueError("retention rows need a non-empty retention corpus (prompts)")
    queries = [Query(f"{RETENTION_ID}{i}", p, "retention") for i, p in enumerate(prompts)]
    key = targets_key(lm, [], queries, 0, k, header + f"|retention|{max_new_tokens}")

    def compute() -> TeacherTargets:
        bar = progress_bar(1, f"retention targets ({len(prompts)} prompts)", progress)
        part = _teacher_rows(lm, [], [(q, None) for q in queries], k, header, fmt, max_new_tokens)
        bar.update(1)
        bar.close()
        return part

    return _cached(cache_dir, f"retention-{key}", compute)


PROSE_PROMPTS = ("Write a short paragraph about something ordinary.", "Explain something you know in a few sentences.",
                 "Tell me about an everyday thing.")  # never the retention check's question


def prose_targets(lm: LoadedModel, passages: Sequence[str], k: int = 20, header: str = DEFAULT_HEADER,
                  fmt: ChatFormat = CHATML, cache_dir: str | Path | None = None,
                  progress: bool = False) -> TeacherTargets:
    """Teacher-forced retention rows: each everyday prose passage as the reply to a generic request
    (:data:`PROSE_PROMPTS`, in turn), with the base model's top-k along it and *no* memory in context.

    Unlike :func:`retention_targets` (the model's own greedy answers, tokens it is sure of), real prose holds
    the surprising tokens where a cartridge's damage to general text shows. No token is gold (no boost)."""
    import torch

    passages = [p.strip() for p in passages if p and p.strip()]
    if not passages:
        raise ValueError("prose retention rows need a non-empty list of passages")
    queries = [Query(f"{RETENTION_ID}prose{i}", PROSE_PROMPTS[i % len(PROSE_PROMPTS)], "retention")
               for i in range(len(passages))]
    key = targets_key(lm, [STMItem(text=t, id=q.item_id) for q, t in zip(queries, passages)], queries, 0, k,
                      header + "|prose")

    def compute() -> TeacherTargets:
        t0 = time.perf_counter()
        tokenizer = lm.tokenizer
        end_id = tokenizer.convert_tokens_to_ids(fmt.end)
        base = STMBuffer(lm, header=header, fmt=fmt)
        examples, rows_ids, rows_p = [], [], []
        bar = progress_bar(len(passages), "prose retention targets", progress)
        for q, text in zip(queries, passages):
            q_ids, r_ids = encode(tokenizer, fmt.query(q.question)), encode(tokenizer, text) + [end_id]
            logits = base.logits_for_ids(q_ids + r_ids)[0, len(q_ids) - 1 : -1].float()
            ids, p = topk_targets(logits, k)
            rows_ids.append(ids)
            rows_p.append(p)
            examples.append(Example(q.item_id, q.question, q.kind, q_ids + r_ids, len(q_ids), [0] * len(r_ids)))
            bar.update(1)
        bar.close()
        return concat_targets([TeacherTargets(examples, torch.cat(rows_ids), torch.cat(rows_p), [],
                                              time.perf_counter() - t0)])

    return _cached(cache_dir, f"prose-{key}", compute)


SHIPPED_TARGETS = "teacher_targets"  # folder of the shipped data (data/ in a checkout) holding teacher targets
SHIPPED_MANIFEST = "manifest.json"  # {"model": fingerprint, "files": {name: sha256 of the .safetensors bytes}}


def shipped_targets(name: str) -> TeacherTargets | None:
    """Teacher targets shipped with the package (``data/teacher_targets/``: the default model's guard rows and the
    first demo's facts, written by ``python -m tools.shipped_targets``) under ``name``, or None. A file is used only when the manifest lists it
    and its bytes match the stored SHA-256; names are :func:`targets_key` hashes, which include the model's
    fingerprint, so another model (or other inputs) never finds them and computes its own."""
    from stmltm_nb.shipped import DataNotFoundError, data_dir

    try:
        folder = data_dir() / SHIPPED_TARGETS
    except DataNotFoundError:
        return None
    manifest = folder / SHIPPED_MANIFEST
    if not manifest.is_file():
        return None
    try:
        want = json.loads(manifest.read_text())["files"].get(f"{name}.safetensors")
    except (ValueError, KeyError, AttributeError):
        return None  # an unreadable manifest ships nothing
    path = folder / f"{name}.safetensors"
    if want is None or not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != want:
        return None
    return _read_targets(path)


def _cached(cache_dir: str | Path | None, name: str, compute: Callable[[], TeacherTargets]) -> TeacherTargets:
    """``cache_dir/name.safetensors`` if it is there and readable, else the shipped copy (:func:`shipped_targets`),
    else ``compute()`` (written to ``cache_dir``). Without a ``cache_dir`` nothing is read or written: the teacher
    computes (how a test checks that the shipped targets match the model)."""
    path = Path(cache_dir) / f"{name}.safetensors" if cache_dir is not None else None
    part = _read_targets(path) if path is not None and path.is_file() else None
    if part is None and path is not None:
        part = shipped_targets(name)
    if part is None:
        part = compute()
        part.cache_hits, part.computed = 0, 1
        if path is not None:
            _write_targets(path, part)
    else:
        part.cache_hits, part.computed = 1, 0
    return part


def concat_targets(parts: Sequence[TeacherTargets]) -> TeacherTargets:
    """Stack per-chunk targets; ``seconds`` sums the original teacher times, ``from_cache`` is true only when
    every part came from the cache."""
    import torch

    examples = [e for p in parts for e in p.examples]
    if not examples:
        raise ValueError("no teacher targets: no question is about any of the items")
    offsets, o = [], 0
    for e in examples:
        offsets.append(o)
        o += len(e.ids) - e.resp_start
    return TeacherTargets(examples, torch.cat([p.topk_ids for p in parts]), torch.cat([p.topk_p for p in parts]),
                          offsets, sum(p.seconds for p in parts), all(p.from_cache for p in parts),
                          sum(p.cache_hits for p in parts), sum(p.computed for p in parts))


def _write_targets(path: Path, tt: TeacherTargets) -> None:
    from safetensors.torch import save

    meta = {"examples": json.dumps([e.__dict__ for e in tt.examples]), "offsets": json.dumps(tt.offsets),
            "seconds": repr(tt.seconds)}
    data = save({"topk_ids": tt.topk_ids.contiguous(), "topk_p": tt.topk_p.contiguous()}, metadata=meta)
    atomic_write_bytes(path, data)


def _read_targets(path: Path) -> TeacherTargets | None:
    """Read cached targets; a corrupt cache file is ignored (recomputed), never trusted."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            ids, p = f.get_tensor("topk_ids"), f.get_tensor("topk_p")
        examples = [Example(**d) for d in json.loads(meta["examples"])]
        return TeacherTargets(examples, ids, p, json.loads(meta["offsets"]), float(meta["seconds"]), True)
    except Exception:  # noqa: BLE001 - any unreadable cache is recomputed
        return None
