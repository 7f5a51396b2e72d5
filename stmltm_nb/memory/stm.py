"""STM: the spec's buffer S_t = {(x_i, y_i)}, held as natural-language items on a live KV cache.

``append`` prefills only the new item's tokens onto the cache (O(b) tokens, not O(n·b)). Questions are
answered on top of the cached STM (:meth:`STMBuffer.on_top`) and the cache is cropped back afterwards, so
answering never mutates STM. Token NLLs (answers, texts, item code lengths) all come from
:meth:`STMBuffer.continuation_nll`.

Notation: n = number of items, b = mean tokens per item (separator included), n·b = STM tokens,
``max_tokens`` = the token budget (the window N_win minus a query reserve; not the half-recall capacity N_max of
:func:`~stmltm_nb.decision.curves.half_recall_n`).

The cache may start from a header prefill (plain STM) or from a cartridge's KV prefix (LTM + residual STM):
see :class:`stmltm_nb.memory.cartridge.Cartridge`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stmltm_nb.io import atomic_write_text
from stmltm_nb.memory.items import (
    STMCapacityError,
    STMError,
    STMItem,
    items_jsonl,
    read_items,
    validate_item,
)
from stmltm_nb.models import LoadedModel
from stmltm_nb.prompts import CHATML, DEFAULT_HEADER, ChatFormat, encode

QUERY_RESERVE_TOKENS = 256  # room kept free for the query suffix and the answer


def _clone_cache(cache):
    """A new DynamicCache holding the same (immutable-by-convention) tensors; cheap, no copy of data."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=[(layer.keys, layer.values) for layer in cache.layers])


class STMBuffer:
    """Short-term memory on a live KV cache.

    Parameters
    ----------
    lm:
        The model handle (:class:`~stmltm_nb.models.LoadedModel`): a causal LM (transformers) and its tokenizer.
    header:
        Text opening the system turn before the items (ignored when ``prefix_cache`` is given).
    max_tokens:
        Token budget for items + prefix (default: the model window minus a query reserve).
    eviction:
        ``"error"`` (default): appending past capacity raises :class:`STMCapacityError`;
        ``"oldest"``: the oldest items are evicted (the cache is rebuilt) to make room.
    prefix_cache, prefix_len:
        Start from a given KV prefix instead of the header prefill, e.g. a cartridge (LTM + residual STM).
    allow_duplicates:
        If false (default) an item whose text equals an existing item's raises :class:`STMError`.
    """

    def __init__(
        self,
        lm: LoadedModel,
        header: str = DEFAULT_HEADER,
        max_tokens: int | None = None,
        eviction: str = "error",
        fmt: ChatFormat = CHATML,
        prefix_cache: Any = None,
        allow_duplicates: bool = False,
    ) -> None:
        if eviction not in ("error", "oldest"):
            raise STMError(f"eviction must be 'error' or 'oldest', got {eviction!r}")
        self.lm = lm
        self.header = header
        self.fmt = fmt
        self.eviction = eviction
        self.allow_duplicates = allow_duplicates
        window = int(getattr(lm.model.config, "max_position_embeddings", 2048))
        self.window = window
        self.max_tokens = int(max_tokens) if max_tokens is not None else window - QUERY_RESERVE_TOKENS
        if self.max_tokens <= 0 or self.max_tokens > window:
            raise STMError(f"max_tokens must be in (0, {window}], got {max_tokens}")
        self._prefix_cache = prefix_cache
        self.items: list[STMItem] = []
        self.evicted: list[STMItem] = []  # items dropped by eviction="oldest", oldest first
        self._item_ids: list[list[int]] = []
        self._cache = None
        self._prefix_ids: list[int] = [] if prefix_cache is not None else encode(lm.tokenizer, fmt.prefix(header))
        self._rebuild()

    # ----- accounting --------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The causal LM of the handle (read-only)."""
        return self.lm.model

    @property
    def tokenizer(self) -> Any:
        """The tokenizer of the handle (read-only)."""
        return self.lm.tokenizer

    @property
    def n(self) -> int:
        """Number of items n."""
        return len(self.items)

    @property
    def n_tokens(self) -> int:
        """Tokens held by items (n·b), separators included."""
        return sum(len(ids) for ids in self._item_ids)

    @property
    def b(self) -> float:
        """Mean tokens per item (separator included); NaN when empty."""
        return self.n_tokens / self.n if self.n else float("nan")

    @property
    def prefix_tokens(self) -> int:
        """Tokens before the first item: the header prefill, or the cartridge length p."""
        if self._prefix_cache is not None:
            return self._prefix_cache.get_seq_length()
        return len(self._prefix_ids)

    @property
    def total_tokens(self) -> int:
        """Tokens in the live cache: prefix + items."""
        return self.prefix_tokens + self.n_tokens

    @property
    def cache(self):
        """The live KV cache (treat it as read-only)."""
        return self._cache

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[STMItem]:
        return iter(list(self.items))

    def get(self, item_id: str) -> STMItem:
        for it in self.items:
            if it.id == item_id:
                return it
        raise KeyError(f"no STM item with id {item_id!r}")

    def context_text(self, question: str | None = None) -> str:
        """The context exactly as the model sees it (prefix + items [+ query suffix])."""
        head = "<cartridge prefix>" if self._prefix_cache is not None else self.fmt.prefix(self.header)
        body = "".join(self.fmt.item(it.text) for it in self.items)
        return head + body + (self.fmt.query(question) if question is not None else "")

    def context_ids(self) -> list[int]:
        """Token ids of prefix (header only) + items, as prefilled."""
        return self._prefix_ids + [t for ids in self._item_ids for t in ids]

    # ----- mutation ------------------------------------------------------------------------------------
    def _forward(self, ids: list[int], cache) -> Any:
        import torch

        with torch.no_grad():
            return self.model(input_ids=torch.tensor([ids], device=self.model.device), cache=cache, use_cache=True)

    def _fresh_cache(self):
        from transformers import DynamicCache

        if self._prefix_cache is not None:
            return _clone_cache(self._prefix_cache)
        cache = DynamicCache()
        self._forward(self._prefix_ids, cache)
        return cache

    def _rebuild(self) -> None:
        """Re-prefill the prefix and every item (after a removal or eviction)."""
        cache = self._fresh_cache()
        flat = [t for ids in self._item_ids for t in ids]
        if flat:
            self._forward(flat, cache)
        self._cache = cache

    def _make_item(self, item: STMItem | str, **fields: Any) -> STMItem:
        fields = {k: v for k, v in fields.items() if v is not None}
        if isinstance(item, STMItem):
            if fields:
                raise STMError("pass either an STMItem or text with fields, not both")
            return item
        if not isinstance(item, str):
            raise STMError(f"STM items must be text (str) or STMItem, got {type(item).__name__}")
        return STMItem(text=item, **fields)

    def append(self, item: STMItem | str, *, id: str | None = None, answer: str | None = None,
               source: str | None = None, key: str | None = None, time: float | None = None) -> STMItem:
        """Add one item and prefill only its tokens onto the live cache. Returns the stored item.

        On any error (bad input, over capacity, a failing forward pass) buffer and cache are left exactly
        as they were.
        """
        it = self._make_item(item, id=id, answer=answer, source=source, key=key, time=time)
        validate_item(it)
        if any(x.id == it.id for x in self.items):
            raise STMError(f"an STM item with id {it.id!r} already exists")
        if not self.allow_duplicates and any(x.text.strip() == it.text.strip() for x in self.items):
            raise STMError(f"duplicate STM item text: {it.text.strip()[:60]!r}")
        ids = encode(self.tokenizer, self.fmt.item(it.text))
        if self.prefix_tokens + len(ids) > self.max_tokens:
            raise STMCapacityError(
                f"item of {len(ids)} tokens does not fit the STM token budget of {self.max_tokens} tokens "
                f"(prefix {self.prefix_tokens}); it is longer than the usable model window"
            )
        if self.total_tokens + len(ids) > self.max_tokens:
            if self.eviction == "error":
                raise STMCapacityError(
                    f"STM is full: {self.total_tokens} + {len(ids)} tokens > the token budget {self.max_tokens}. "
                    "Consolidate into a cartridge, remove items, or use eviction='oldest'."
                )
            self._evict_for(len(ids))
        with self._restored(keep=True):  # a failing forward leaves the cache as it was
            self._forward(ids, self._cache)
        self.items.append(it)
        self._item_ids.append(ids)
        return it

    def extend(self, items: Iterable[STMItem | str]) -> list[STMItem]:
        """Append several items in order (stops at the first bad one; earlier ones stay)."""
        return [self.append(it) for it in items]

    def _evict_for(self, needed: int) -> None:
        k = 0
        total = self.total_tokens
        while k < self.n and total + needed > self.max_tokens:
            total -= len(self._item_ids[k])
            k += 1
        self.evicted.extend(self.items[:k])
        del self.items[:k]
        del self._item_ids[:k]
        self._rebuild()

    def remove(self, item_id: str) -> STMItem:
        """Remove an item by id; the cache is rebuilt (later items shift position)."""
        for i, it in enumerate(self.items):
            if it.id == item_id:
                del self.items[i]
                del self._item_ids[i]
                self._rebuild()
                return it
        raise KeyError(f"no STM item with id {item_id!r}")

    def clear(self) -> None:
        """Drop every item (the prefix stays)."""
        self.items.clear()
        self._item_ids.clear()
        self._rebuild()

    # ----- querying ------------------------------------------------------------------------------------
    @contextmanager
    def _restored(self, keep: bool = False) -> Iterator[None]:
        """Crop the cache back to its current length when the block exits: always, or with ``keep`` only when
        the block raises. The one place the live cache is ever cropped."""
        len0 = self._cache.get_seq_length()
        ok = False
        try:
            yield
            ok = keep
        finally:
            grown = self._cache.get_seq_length() - len0
            if not ok and grown > 0:
                self._cache.crop(-grown)

    @contextmanager
    def on_top(self, ids: list[int]) -> Iterator[tuple[Any, Any]]:
        """Run token ``ids`` on top of the cached STM; yields (model outputs, live cache). Whatever the block
        adds to the cache (these ids, decoded tokens) is cropped off on exit, errors included."""
        ids = list(ids)
        if self._cache.get_seq_length() + len(ids) > self.window:
            raise STMCapacityError(f"query of {len(ids)} tokens does not fit the model window")
        with self._restored():
            yield self._forward(ids, self._cache), self._cache

    def query_logits(self, question: str, continuation: str = ""):
        """Logits (1, T, vocab) for the query suffix (+ ``continuation``) given the cached STM."""
        return self.logits_for_ids(encode(self.tokenizer, self.fmt.query(question) + continuation))

    def logits_for_ids(self, ids: list[int]):
        """Logits (1, len(ids), vocab) for token ids run on top of the cached STM (cache unchanged)."""
        with self.on_top(ids) as (out, _):
            return out.logits

    def continuation_nll(self, prefix_ids: list[int], target_ids: list[int], reduction: str = "mean") -> float:
        """Negative log-likelihood of ``target_ids`` following ``prefix_ids`` on top of the cached STM, in nats:
        per target token (``reduction="mean"``) or in total (``"sum"``). The cache is unchanged."""
        import torch

        prefix_ids, target_ids = list(prefix_ids), list(target_ids)
        if not prefix_ids or not target_ids:
            raise STMError("continuation_nll needs at least one prefix token and one target token")
        if reduction not in ("mean", "sum"):
            raise STMError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        logits = self.logits_for_ids(prefix_ids + target_ids)[0, len(prefix_ids) - 1 : -1].float().cpu()
        logp = torch.log_softmax(logits, -1)[torch.arange(len(target_ids)), torch.tensor(target_ids)]
        return float(-(logp.mean() if reduction == "mean" else logp.sum()))

    def answer_nll(self, question: str, answer: str) -> float:
        """Mean negative log-likelihood of ``answer`` tokens after the question, in nats per token."""
        a_ids = encode(self.tokenizer, answer.strip())
        if not a_ids:
            raise STMError("answer is empty")
        return self.continuation_nll(encode(self.tokenizer, self.fmt.query(question)), a_ids)

    def answer(self, question: str, max_new_tokens: int = 24) -> str:
        """Greedy answer to ``question`` using the cached STM; the cache is unchanged afterwards."""
        ids, _ = self.generate(question, max_new_tokens)
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def generate(self, question: str, max_new_tokens: int = 24, keep_logits: bool = False,
                 stop_at_newline: bool = True):
        """Greedy decoding after the question. Returns (generated ids, logits [len(ids)+1, vocab] or None).

        With ``keep_logits`` the returned rows are the next-token logits that chose each generated token, plus
        the row after the last one (which predicts the stop token). The cache is unchanged afterwards.
        """
        import torch

        ids = encode(self.tokenizer, self.fmt.query(question))
        stop = {self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids(self.fmt.end)}
        out_ids: list[int] = []
        rows = []
        with self.on_top(ids) as (out, cache), torch.no_grad():
            logits = out.logits[0, -1]
            while True:
                if keep_logits:
                    rows.append(logits)
                nxt = int(logits.argmax())
                if nxt in stop or len(out_ids) >= max_new_tokens:
                    break
                out_ids.append(nxt)
                if stop_at_newline and "\n" in self.tokenizer.decode([nxt]):
                    break
                logits = self.model(input_ids=torch.tensor([[nxt]], device=self.model.device), cache=cache,
                                    use_cache=True).logits[0, -1]
        return out_ids, (torch.stack(rows) if keep_logits else None)

    def answer_many(self, questions: Sequence[str], max_new_tokens: int = 24, batch_size: int = 16) -> list[str]:
        """Greedy answers to ``questions`` (in order), ``batch_size`` at a time, the cached STM copied for each
        question of a batch (memory: ``batch_size`` × the STM's KV cache): the answers :meth:`answer` gives one by one (each query left-padded, its pads masked, its tokens at
        the positions they have alone), in one decode pass per token for the whole batch instead of one per
        question. Float32 sums in other orders can, rarely, flip a near-tied greedy token. The cache is unchanged."""
        if batch_size < 1:
            raise STMError(f"batch_size must be >= 1, got {batch_size}")
        qs = list(questions)
        out: list[str] = []
        for i in range(0, len(qs), batch_size):
            chunk = qs[i:i + batch_size]
            ids = (self._generate_batch(chunk, max_new_tokens) if len(chunk) > 1
                   else [self.generate(chunk[0], max_new_tokens)[0]])
            out += [self.tokenizer.decode(x, skip_special_tokens=True).strip() for x in ids]
        return out

    def _generate_batch(self, questions: Sequence[str], max_new_tokens: int) -> list[list[int]]:
        """:meth:`generate`'s greedy ids (newline stop) for several questions in one batch."""
        import torch
        from transformers import DynamicCache

        enc = [encode(self.tokenizer, self.fmt.query(q)) for q in questions]
        n_b, width, c = len(enc), max(map(len, enc)), self._cache.get_seq_length()
        if c + width > self.window:
            raise STMCapacityError(f"query of {width} tokens does not fit the model window")
        dev = self.model.device
        pad = next((t for t in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id) if t is not None), 0)  # masked
        lens = torch.tensor([len(e) for e in enc], device=dev)
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in enc], device=dev)
        offset = torch.arange(width, device=dev)[None, :] - (width - lens)[:, None]  # a token's place in its query
        mask = torch.cat([torch.ones(n_b, c, dtype=torch.long, device=dev), (offset >= 0).long()], 1)
        pos = c + offset.clamp(min=0)
        cache = DynamicCache(ddp_cache_data=[(layer.keys.expand(n_b, -1, -1, -1), layer.values.expand(n_b, -1, -1, -1))
                                             for layer in self._cache.layers])
        stop = {self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids(self.fmt.end)}
        outs: list[list[int]] = [[] for _ in enc]
        done = [False] * n_b
        with torch.no_grad():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache,
                                use_cache=True).logits[:, -1]
            for t in range(max_new_tokens + 1):
                nxt = logits.argmax(-1).tolist()
                for r, tok in enumerate(nxt):
                    if done[r]:
                        continue
                    if tok in stop or len(outs[r]) >= max_new_tokens:
                        done[r] = True
                        continue
                    outs[r].append(tok)
                    if "\n" in self.tokenizer.decode([tok]):
                        done[r] = True
                if all(done):
                    break
                mask = torch.cat([mask, torch.ones(n_b, 1, dtype=torch.long, device=dev)], 1)
                logits = self.model(input_ids=torch.tensor(nxt, device=dev)[:, None], attention_mask=mask,
                                    position_ids=(c + lens + t)[:, None], cache=cache, use_cache=True).logits[:, -1]
        return outs

    # ----- persistence ---------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the items as JSONL (one item per line), atomically."""
        return atomic_write_text(path, items_jsonl(self.items))

    @classmethod
    def load(cls, path: str | os.PathLike, lm: LoadedModel, **kwargs: Any) -> STMBuffer:
        """Rebuild a buffer (and its cache) from a JSONL file written by :meth:`save`."""
        buf = cls(lm, **kwargs)
        buf.extend(read_items(path))
        return buf

