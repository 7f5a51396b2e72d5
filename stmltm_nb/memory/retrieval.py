"""STM + retrieval: the notes stay outside the context in a BM25 index (``bm25s``); for each question the top-k
notes are put into a fresh context, in the order they were written, and the model answers from them.

The per-query cost is a prefill of k notes plus the search (seconds; nearly flat in the number of notes n), against
STM's cost that grows with n and a cartridge's fixed training cost. The index is built once per memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stmltm_nb.memory.items import STMItem
from stmltm_nb.memory.stm import STMBuffer
from stmltm_nb.models import LoadedModel

DEFAULT_K = 4  # notes put into the context per question


class RetrievalMemory:
    """Notes in a BM25 index; :meth:`answer` and :meth:`answer_nll` answer from the top ``k`` notes in context.
    Duck-types the reading side of :class:`~stmltm_nb.memory.stm.STMBuffer` (``answer``, ``answer_nll``)."""

    def __init__(self, lm: LoadedModel, items: Sequence[STMItem], k: int = DEFAULT_K, **stm_kwargs: Any) -> None:
        import bm25s

        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.lm, self.k, self._stm_kwargs = lm, int(k), stm_kwargs
        self.items = list(items)
        self._bm25s = bm25s
        self._index = None
        if self.items:
            self._index = bm25s.BM25()
            self._index.index(self._tokens([it.text for it in self.items]), show_progress=False)

    def _tokens(self, texts: list[str]):
        return self._bm25s.tokenize(texts, stopwords="en", show_progress=False)

    @property
    def n(self) -> int:
        """Notes in the index."""
        return len(self.items)

    def retrieve(self, question: str) -> list[STMItem]:
        """The top-k notes for ``question`` by BM25 score, in the order they were written (none scoring 0)."""
        if self._index is None:
            return []
        k = min(self.k, len(self.items))
        docs, scores = self._index.retrieve(self._tokens([question]), k=k, show_progress=False)
        picked = sorted(int(d) for d, s in zip(docs[0], scores[0]) if s > 0)
        return [self.items[i] for i in picked]

    def context(self, question: str) -> STMBuffer:
        """A fresh STM holding the notes retrieved for ``question``."""
        buf = STMBuffer(self.lm, **self._stm_kwargs)
        buf.extend(self.retrieve(question))
        return buf

    def answer(self, question: str, max_new_tokens: int = 24) -> str:
        """Greedy answer with the retrieved notes in context."""
        return self.context(question).answer(question, max_new_tokens=max_new_tokens)

    def answer_nll(self, question: str, answer: str) -> float:
        """Mean NLL of ``answer`` (nats/token) with the retrieved notes in context."""
        return self.context(question).answer_nll(question, answer)


__all__ = ["RetrievalMemory", "DEFAULT_K"]
