"""Context distillation: train a cartridge so that the model *without* STM answers like the model *with* it.

Teacher: the frozen model with a chunk of STM items in context (``chunk_size`` consecutive items holding the
asked item). Student: the model + cartridge, no items in context. For each (item, question):

1. the teacher answers greedily with its chunk in context (the response, ended by ``<|im_end|>``); if the item
   has a gold answer y_i that the response misses, the item's own text is used as response instead;
2. the teacher's top-k (default 20) next-token probabilities on every response token are stored, renormalised
   over the top-k (the tail mass is dropped, never collapsed to top-1);
3. the student loss is cross-entropy against those targets on response tokens only, averaged per token
   (nats/token). ``gold_weight`` g mixes a hard target on the tokens of y_i inside the response (and on the
   tokens where a fallback text leaves the teacher's top-1): target = (1-g)·teacher + g·one-hot.

Teacher targets are computed once and cached (in memory and, with ``cache_dir``, on disk as safetensors keyed
by a hash of everything they depend on), so each training step runs the student only. Student steps are
batched with right padding and an attention mask.

Questions ("self-study"): each item's shipped templates (if any) plus ``n_self`` questions the model writes
itself by sampling (temperature 0.7, seeded). Held-out paraphrases are never used here.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cartridge import Cartridge
from .facts import chunks
from .io import atomic_write_bytes
from .models import model_fingerprint
from .prompts import CHATML, DEFAULT_HEADER, ChatFormat, encode
from .stm import STMBuffer, STMItem

SELF_STUDY_PROMPT = "Write one short question whose answer is stated in this sentence:\n{text}"


@dataclass
class Query:
    item_id: str
    question: str
    kind: str  # "template" or "self"


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

    def __len__(self) -> int:
        return len(self.examples)


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # per step, nats/token
    seconds: float = 0.0
    steps: int = 0
    tokens_seen: int = 0  # student tokens processed (padding excluded)


# ----- questions -----------------------------------------------------------------------------------------------
def self_study_questions(model: Any, tokenizer: Any, item: STMItem, n: int = 1, seed: int = 0,
                         fmt: ChatFormat = CHATML, max_new_tokens: int = 24) -> list[str]:
    """Questions about ``item`` written by the model itself (sampled at temperature 0.7, seeded)."""
    import torch

    if n <= 0:
        return []
    prompt = f"{fmt.start}user\n{SELF_STUDY_PROMPT.format(text=item.text.strip())}{fmt.end}\n{fmt.start}assistant\n"
    ids = torch.tensor([encode(tokenizer, prompt)])
    gen = torch.Generator().manual_seed(seed)
    end_id = tokenizer.convert_tokens_to_ids(fmt.end)
    out: list[str] = []
    with torch.no_grad():
        for _ in range(n * 3):  # a few tries to get n usable questions
            from transformers import DynamicCache

            cache = DynamicCache()
            logits = model(input_ids=ids, past_key_values=cache, use_cache=True).logits[0, -1]
            toks: list[int] = []
            for _ in range(max_new_tokens):
                probs = torch.softmax(logits.float() / 0.7, dim=-1)
                t = int(torch.multinomial(probs, 1, generator=gen))
                if t in (end_id, tokenizer.eos_token_id):
                    break
                toks.append(t)
                logits = model(input_ids=torch.tensor([[t]]), past_key_values=cache, use_cache=True).logits[0, -1]
            q = tokenizer.decode(toks, skip_special_tokens=True).strip().split("\n")[0].strip()
            if q.endswith("?") and 10 <= len(q) <= 200 and q not in out and _on_topic(q, item.text):
                out.append(q)
            if len(out) >= n:
                break
    return out


def _content_words(text: str) -> set[str]:
    import re

    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3} - _STOP


_STOP = {"what", "which", "whose", "where", "when", "that", "this", "with", "from", "there", "their", "called",
         "name", "named", "does", "have", "about", "would", "could", "into", "they", "were", "been"}


def _on_topic(question: str, text: str) -> bool:
    """A self-written question counts only if it shares at least two content words with its item."""
    return len(_content_words(question) & _content_words(text)) >= 2


def build_queries(model: Any, tokenizer: Any, items: Sequence[STMItem], templates: dict[str, Sequence[str]],
                  n_self: int = 1, seed: int = 0) -> list[Query]:
    """Training questions: shipped templates per item id plus ``n_self`` self-written questions per item."""
    qs: list[Query] = []
    for i, it in enumerate(items):
        qs += [Query(it.id, q, "template") for q in templates.get(it.id, ())]
        qs += [Query(it.id, q, "self") for q in self_study_questions(model, tokenizer, it, n_self, seed + i)]
    return qs


# ----- teacher ---------------------------------------------------------------------------------------------------
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


def targets_key(model: Any, tokenizer: Any, items: Sequence[STMItem], queries: Sequence[Query], chunk_size: int,
                k: int, header: str) -> str:
    """Hash of everything teacher targets depend on (model, items, questions, chunking, k, header)."""
    h = hashlib.sha256()
    h.update(model_fingerprint(model, tokenizer).encode())
    h.update(json.dumps([[it.id, it.text, it.answer] for it in items]).encode())
    h.update(json.dumps([[q.item_id, q.question, q.kind] for q in queries]).encode())
    h.update(f"{chunk_size}|{k}|{header}|v1".encode())
    return h.hexdigest()[:24]


def compute_teacher_targets(model: Any, tokenizer: Any, items: Sequence[STMItem], queries: Sequence[Query],
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
    bar = _progress(len(queries), "teacher targets", progress)
    for group in chunks(list(items), chunk_size):
        group_q = [q for it in group for q in by_item.get(it.id, [])]
        if not group_q:
            continue
        key = targets_key(model, tokenizer, group, group_q, chunk_size, k, header)
        path = Path(cache_dir) / f"teacher-{key}.safetensors" if cache_dir is not None else None
        part = _read_targets(path) if path is not None and path.is_file() else None
        if part is None:
            part = _teacher_chunk(model, tokenizer, group, by_item, k, header, fmt, max_new_tokens)
            if path is not None:
                _write_targets(path, part)
        parts.append(part)
        bar.update(len(group_q))
    bar.close()
    return _concat_targets(parts)


def _teacher_chunk(model: Any, tokenizer: Any, group: Sequence[STMItem], by_item: dict[str, list[Query]], k: int,
                   header: str, fmt: ChatFormat, max_new_tokens: int) -> TeacherTargets:
    """Teacher targets for the questions about one chunk of items, with that chunk in context."""
    import torch

    t0 = time.perf_counter()
    end_id = tokenizer.convert_tokens_to_ids(fmt.end)
    examples: list[Example] = []
    rows_ids, rows_p = [], []
    teacher = STMBuffer(model, tokenizer, header=header, fmt=fmt)
    teacher.extend([STMItem(text=it.text, id=it.id) for it in group])
    for it in group:
        for q in by_item.get(it.id, []):
            gen_ids, gen_logits = teacher.generate(q.question, max_new_tokens, keep_logits=True)
            response = tokenizer.decode(gen_ids, skip_special_tokens=True).strip()
            q_ids = encode(tokenizer, fmt.query(q.question))
            clean = bool(gen_ids) and gen_ids == encode(tokenizer, response) and len(gen_logits) == len(gen_ids) + 1
            if it.answer and it.answer.strip().lower() not in response.lower():
                response, clean = it.text.strip(), False
            r_ids = encode(tokenizer, response) + [end_id]
            if clean:  # the generation pass already produced the teacher's distributions
                logits = gen_logits.float()
            else:
                logits = teacher.logits_for_ids(q_ids + r_ids)[0, len(q_ids) - 1 : -1].float()
            top = torch.topk(torch.softmax(logits, dim=-1), k, dim=-1)
            rows_ids.append(top.indices)
            rows_p.append(top.values / top.values.sum(-1, keepdim=True))
            gold = _gold_token_mask(tokenizer, response, it.answer, len(r_ids) - 1) + [0]
            examples.append(Example(it.id, q.question, q.kind, q_ids + r_ids, len(q_ids), gold))
    return _concat_targets([TeacherTargets(examples, torch.cat(rows_ids), torch.cat(rows_p), [],
                                           time.perf_counter() - t0)])


def _concat_targets(parts: Sequence[TeacherTargets]) -> TeacherTargets:
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
                          offsets, sum(p.seconds for p in parts), all(p.from_cache for p in parts))


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


# ----- student ---------------------------------------------------------------------------------------------------
def _progress(total: int, desc: str, enabled: bool):
    if enabled:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc)

    class _Null:
        def update(self, n=1):
            pass

        def set_postfix(self, **kw):
            pass

        def close(self):
            pass

    return _Null()


def off_path(tt: TeacherTargets, i: int) -> Any:
    """Bool mask over example ``i``'s response tokens: True where the token is not the teacher's top-1, i.e.
    where a fallback response (the item's own text) leaves the path the teacher would have taken."""
    import torch

    e = tt.examples[i]
    resp = torch.tensor(e.ids[e.resp_start :])
    return tt.topk_ids[tt.offsets[i] : tt.offsets[i] + len(resp), 0] != resp


def collate(tt: TeacherTargets, idx: Sequence[int], pad_id: int, gold_weight: float = 0.0,
            gold_boost: float = 1.0, contexts: Sequence[Sequence[int]] | None = None):
    """Batch examples ``idx``: right-padded ids, attention mask, and per-response-token targets.

    ``contexts[b]`` (optional): token ids put before example b's query, i.e. what the student sees between
    its cartridge and the question (the LoRA header, residual items); the teacher targets are unchanged.
    Returns (input_ids [B,T], attention_mask [B,T], rows [R] (batch row), cols [R] (position predicting the
    token), topk_ids [R,k], target_p [R,k], weight [R]) where R counts response tokens in the batch.

    With ``gold_weight`` g > 0 the hard target (mixed in with weight g, token weighing ``gold_boost``, the others
    1) goes on the tokens of the gold answer *and* on every response token that is not the teacher's top-1:
    where the teacher missed y_i the response is the item's own text, and at the tokens where that text leaves
    the teacher's path (measured: "X *plays* an instrument called ..." where the teacher's top-1 is " is") the
    teacher's distribution points the student back to the teacher's wrong answer.
    """
    import torch

    exs = [tt.examples[i] for i in idx]
    if contexts is not None:
        if len(contexts) != len(exs):
            raise ValueError(f"contexts has {len(contexts)} entries for {len(exs)} examples")
        exs = [Example(e.item_id, e.question, e.kind, list(c) + e.ids, e.resp_start + len(c), e.gold_mask)
               for e, c in zip(exs, contexts)]
    T = max(len(e.ids) for e in exs)
    input_ids = torch.full((len(exs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(exs), T), dtype=torch.long)
    rows, cols, tids, tps, wts = [], [], [], [], []
    for b, (i, e) in enumerate(zip(idx, exs)):
        input_ids[b, : len(e.ids)] = torch.tensor(e.ids)
        mask[b, : len(e.ids)] = 1
        n_resp = len(e.ids) - e.resp_start
        o = tt.offsets[i]
        ids_i, p_i = tt.topk_ids[o : o + n_resp].clone(), tt.topk_p[o : o + n_resp].clone()
        g = torch.tensor(e.gold_mask[:n_resp], dtype=torch.bool)
        if gold_weight > 0:
            resp = torch.tensor(e.ids[e.resp_start :])
            g = g | off_path(tt, i)  # where the item text replaced the teacher's answer
            if g.any():
                # put the gold token in the last top-k slot if absent, then mix in a one-hot on it
                present = ids_i == resp[:, None]
                absent = g & ~present.any(-1)
                ids_i[absent, -1] = resp[absent]
                p_i[absent, -1] = 0.0
                present = ids_i == resp[:, None]
                p_i[g] = (1 - gold_weight) * p_i[g] + gold_weight * present[g].float()
        wts.append(1.0 + (gold_boost - 1.0) * g.float())
        rows.append(torch.full((n_resp,), b))
        cols.append(torch.arange(e.resp_start - 1, len(e.ids) - 1))
        tids.append(ids_i)
        tps.append(p_i)
    return input_ids, mask, torch.cat(rows), torch.cat(cols), torch.cat(tids), torch.cat(tps), torch.cat(wts)


def distill_loss(model: Any, batch, per_row: bool = False) -> Any:
    """Soft cross-entropy (nats/token, weighted mean) of ``model`` (PEFT-wrapped) against the teacher targets.

    Logits are computed only at the positions that predict response tokens (``logits_to_keep``). With
    ``per_row`` it returns ``(loss, row_losses)``: the same weighted mean per batch row, detached (nats/token).
    """
    import torch

    input_ids, mask, rows, cols, tids, tps, wts = batch
    keep = torch.unique(cols)
    logits = model(input_ids=input_ids, attention_mask=mask, logits_to_keep=keep).logits
    sel = torch.log_softmax(logits[rows, torch.searchsorted(keep, cols)].float(), dim=-1)
    ce = -(tps * sel.gather(-1, tids)).sum(-1)
    loss = (wts * ce).sum() / wts.sum()
    if not per_row:
        return loss
    n = input_ids.shape[0]
    num = torch.zeros(n).index_add_(0, rows, (wts * ce).detach())
    den = torch.zeros(n).index_add_(0, rows, wts.detach())
    return loss, num / den.clamp_min(1e-12)


def pick_batch(order: list[int], pool: Sequence[int], batch_size: int, gen: Any,
               ex_loss: Any = None, hard_frac: float = 0.0) -> tuple[list[int], list[int]]:
    """Next batch of example indices and the rest of the epoch ``order``.

    Plain: the next ``batch_size`` of a shuffled pass over ``pool``. With ``hard_frac`` > 0 and a last-seen loss
    (``ex_loss``, nats/token, NaN where unseen) for every pool example, that share of the batch is drawn instead
    with probability proportional to the loss, without replacement (hard-example mining: the examples the
    cartridge still gets wrong, e.g. two facts of one relation it confuses, come back more often).
    """
    import torch

    _check_fraction("hard_frac", hard_frac)
    if batch_size < 1 or not pool:
        raise ValueError(f"need batch_size >= 1 and a non-empty pool, got {batch_size} and {len(pool)} examples")
    n_hard = 0
    if hard_frac > 0 and ex_loss is not None:
        w = ex_loss[list(pool)]
        if not torch.isnan(w).any():
            n_hard = min(len(pool), int(round(hard_frac * batch_size)))
    hard: list[int] = []
    if n_hard:
        w = w.clamp_min(1e-6)
        hard = [pool[j] for j in torch.multinomial(w, n_hard, replacement=False, generator=gen).tolist()]
    need = batch_size - len(hard)
    if len(order) < need:
        order = order + [pool[i] for i in torch.randperm(len(pool), generator=gen).tolist()]
    return hard + order[:need], order[need:]


def student_batch(cart: Cartridge, tt: TeacherTargets, idx: Sequence[int], gold_weight: float = 0.0,
                  gold_boost: float = 1.0, residual_ids: Sequence[Sequence[int]] | None = None):
    """:func:`collate` for ``cart``'s student: each row starts with what the student sees before the question
    (:meth:`Cartridge.student_context_ids`, then ``residual_ids[b]`` if given), padded with the tokenizer's pad
    id (0 when it has none)."""
    pad_id = cart.tokenizer.pad_token_id if cart.tokenizer.pad_token_id is not None else 0
    head = cart.student_context_ids()
    extra = residual_ids if residual_ids is not None else [()] * len(idx)
    return collate(tt, idx, pad_id, gold_weight, gold_boost, [head + list(r) for r in extra])


def residual_pool(tokenizer: Any, items: Sequence[STMItem], fmt: ChatFormat = CHATML) -> list[tuple[str, list[int]]]:
    """(item id, token ids as the item sits in STM) for each item: the filler :func:`train_cartridge` samples
    as stand-in residual STM."""
    return [(it.id, encode(tokenizer, fmt.item(it.text))) for it in items]


def sample_residual(pool: Sequence[tuple[str, list[int]]], exclude: str, n_items: int, gen: Any,
                    own_prob: float = 0.0) -> list[int]:
    """``n_items`` items of ``pool`` other than ``exclude`` (fewer if the pool is smaller), drawn without
    replacement, concatenated. With probability ``own_prob`` one of them is replaced by the ``exclude`` item
    itself, at a random position: the asked fact then sits in residual STM, where serving finds it too."""
    import torch

    others = [ids for iid, ids in pool if iid != exclude]
    pick = torch.randperm(len(others), generator=gen)[: max(0, n_items)].tolist()
    chosen = [others[j] for j in pick]
    own = [ids for iid, ids in pool if iid == exclude]
    if chosen and own and own_prob > 0 and float(torch.rand((), generator=gen)) < own_prob:
        chosen[int(torch.randint(0, len(chosen), (1,), generator=gen))] = own[0]
    return [t for ids in chosen for t in ids]


def _check_fraction(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def train_cartridge(cart: Cartridge, tt: TeacherTargets, steps: int = 120, batch_size: int = 16,
                    lr: float = 2e-2, gold_weight: float = 0.5, gold_boost: float = 4.0, seed: int = 0,
                    progress: bool = True, warmup: int = 5, example_idx: Sequence[int] | None = None,
                    residual: Sequence[tuple[str, list[int]]] = (), residual_prob: float = 0.0,
                    residual_max: int = 4, residual_own_prob: float = 0.0, hard_frac: float = 0.0) -> TrainResult:
    """Adam on the cartridge's trainable parameters only (base model frozen), cosine decay to 10 % of ``lr``.

    ``hard_frac``: share of each batch drawn by loss-proportional sampling once every example has been seen
    (:func:`pick_batch`); the rest is a shuffled pass, so every example keeps coming back.

    Residual-aware training: with probability ``residual_prob`` a batch's student sequences each get r items
    from ``residual`` (see :func:`residual_pool`; never the asked item; r uniform in 1..``residual_max``, one r
    per batch so rows stay equally long) between the cartridge and the question, as "LTM + residual STM"
    serves it; the teacher targets stay those of the teacher with the item's own chunk. Without it, items
    after the cartridge were never seen in training and answers drift to them. With only *other* items there,
    the student learns to ignore residual STM (measured: residual facts 0.00 in "LTM + residual STM");
    ``residual_own_prob`` puts the asked item itself among them in that share of rows, so the student also
    learns to read residual STM (the teacher had that item in context, so its targets still apply).

    Deterministic for a given ``seed``. Returns the per-step loss history (nats/token).
    """
    import torch

    if steps < 0 or batch_size < 1:
        raise ValueError("steps must be >= 0 and batch_size >= 1")
    _check_fraction("residual_prob", residual_prob)
    if residual_prob > 0 and not residual:
        raise ValueError("residual_prob > 0 needs a residual pool (distill.residual_pool)")
    _check_fraction("residual_own_prob", residual_own_prob)
    if residual_max < 1:
        raise ValueError(f"residual_max must be >= 1, got {residual_max}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr}")
    _check_fraction("gold_weight", gold_weight)
    _check_fraction("hard_frac", hard_frac)
    pool = list(example_idx) if example_idx is not None else list(range(len(tt)))
    if not pool:
        raise ValueError("no training examples")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    params = cart.trainable_parameters()
    opt = torch.optim.Adam(params, lr=lr)

    def lr_at(s: int) -> float:
        if s < warmup:
            return lr * (s + 1) / warmup
        frac = (s - warmup) / max(1, steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    res = TrainResult()
    order: list[int] = []
    ex_loss = torch.full((len(tt),), float("nan"))  # last-seen loss per example (nats/token)
    bar = _progress(steps, "train cartridge", progress)
    t0 = time.perf_counter()
    cart.peft_model.train()
    try:
        for s in range(steps):
            idx, order = pick_batch(order, pool, batch_size, gen, ex_loss, hard_frac)
            n_res = 0  # one count per batch: rows of equal length, no compute spent on padding
            if residual_prob > 0 and float(torch.rand((), generator=gen)) < residual_prob:
                n_res = int(torch.randint(1, residual_max + 1, (1,), generator=gen))
            extra = [sample_residual(residual, tt.examples[i].item_id, n_res, gen, residual_own_prob) for i in idx]
            batch = student_batch(cart, tt, idx, gold_weight, gold_boost, extra)
            for g in opt.param_groups:
                g["lr"] = lr_at(s)
            loss, row_loss = distill_loss(cart.peft_model, batch, per_row=True)
            ex_loss[idx] = row_loss
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at step {s}; lower lr (now {lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            res.losses.append(loss.item())
            res.tokens_seen += int(batch[1].sum())
            bar.update(1)
            bar.set_postfix(loss=f"{res.losses[-1]:.3f}")
    finally:
        cart.peft_model.eval()
        bar.close()
    res.seconds = time.perf_counter() - t0
    res.steps = steps
    cart.meta["stats"] = {"steps": steps, "batch_size": batch_size, "lr": lr, "gold_weight": gold_weight,
                          "gold_boost": gold_boost, "seed": seed,
                          "residual_prob": residual_prob, "residual_max": residual_max,
                          "residual_own_prob": residual_own_prob, "hard_frac": hard_frac,
                          "final_loss": res.losses[-1] if res.losses else None,
                          "train_seconds": round(res.seconds, 2), "examples": len(pool)}
    return res
