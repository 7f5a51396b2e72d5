"""Governance: contradictions and drift within S_t (no torch here; the model enters through a callable).

- Key-based: two items with the same ``key`` (e.g. ``capital:Lusglaex``) and different answers conflict;
  the newer one (later ``time``, then later position) wins.
- Model-based: item j conflicts with item i when the answer y_i becomes less likely once x_j is in the
  context: NLL(y_i | x_i, x_j, q_i) − NLL(y_i | x_i, q_i) > ``threshold`` nats/token. Candidate pairs are
  pre-filtered by shared content words, so the model runs on few pairs, not n².
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Conflict:
    older: str  # item id that loses
    newer: str  # item id that wins
    reason: str  # "same key" or "nll rise"
    score: float  # 1.0 for key conflicts; NLL rise (nats/token) for model-based ones


def key_conflicts(items: Sequence[Any]) -> list[Conflict]:
    """Pairs of items with the same non-empty key and different answers (or texts when no answer)."""
    by_key: dict[str, list[tuple[int, Any]]] = {}
    for pos, it in enumerate(items):
        if getattr(it, "key", None):
            by_key.setdefault(it.key, []).append((pos, it))
    out = []
    for group in by_key.values():
        group.sort(key=lambda pi: (pi[1].time, pi[0]))
        for (_, a), (_, b) in zip(group, group[1:]):
            va = (a.answer or a.text).strip().lower()
            vb = (b.answer or b.text).strip().lower()
            if va != vb:
                out.append(Conflict(a.id, b.id, "same key", 1.0))
    return out


def superseded_ids(items: Sequence[Any]) -> set[str]:
    """Ids of items overruled by a newer conflicting item (a newer item always wins)."""
    return {c.older for c in key_conflicts(items)}


_WORD = re.compile(r"[A-Za-z][A-Za-z']+")
_STOP = {"the", "was", "that", "this", "with", "from", "called", "named", "has", "have", "are", "is", "of", "in",
         "by", "a", "an", "and", "its", "city", "town", "people", "speak", "language", "plays", "instrument"}


def candidate_pairs(items: Sequence[Any], min_shared: int = 1) -> list[tuple[int, int]]:
    """Index pairs (i < j) whose texts share at least ``min_shared`` capitalised content words (names)."""
    words = [{w.lower() for w in _WORD.findall(it.text) if w[0].isupper() and w.lower() not in _STOP}
             for it in items]
    return [(i, j) for i in range(len(items)) for j in range(i + 1, len(items))
            if len(words[i] & words[j]) >= min_shared]


def model_conflicts(items: Sequence[Any], questions: dict[str, str],
                    nll: Callable[[list[Any], str, str], float], threshold: float = 1.0) -> list[Conflict]:
    """Model-based contradiction check.

    ``questions[item_id]`` is a question whose answer is the item's ``answer``; ``nll(context_items, question,
    answer)`` returns the answer NLL in nats/token with those items in context. Only candidate pairs are run.
    """
    out = []
    for i, j in candidate_pairs(items):
        older, newer = (items[i], items[j]) if (items[i].time, i) <= (items[j].time, j) else (items[j], items[i])
        if not older.answer or older.id not in questions:
            continue
        q = questions[older.id]
        rise = nll([older, newer], q, older.answer) - nll([older], q, older.answer)
        if rise > threshold:
            out.append(Conflict(older.id, newer.id, "nll rise", rise))
    return out
