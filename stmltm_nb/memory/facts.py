"""The shipped fact set (``data/facts.jsonl``): fictional facts with training and held-out questions.

Schema (one JSON object per line): ``id``, ``key`` (relation:subject; a contradiction shares its key),
``relation``, ``subject``, ``text`` (the STM item), ``answer`` (y_i), ``train_questions`` (2 templates),
``heldout_question`` (1 paraphrase never trained on), ``supersedes`` (id of the fact a contradiction
replaces, else null). See ``data/README.md``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from stmltm_nb.memory.stm import STMItem
from stmltm_nb.shipped import DataNotFoundError, data_dir  # noqa: F401 - re-exported


@dataclass(frozen=True)
class Fact:
    id: str
    key: str
    relation: str
    subject: str
    text: str
    answer: str
    train_questions: tuple[str, ...]
    heldout_question: str
    supersedes: str | None = None
    source: str = "facts.jsonl"  # "notes" for a studied note of yours (:mod:`stmltm_nb.memory.study`)
    answer_is_gold: bool = True  # False: ``answer`` is a key term the checks look for, not a training target

    def to_item(self, time: float | None = None) -> STMItem:
        """The fact as an STM item (x_i = text, y_i = answer when it is gold; a key term found by self-study
        is for the checks only, never a training target)."""
        kw = {"time": time} if time is not None else {}
        answer = self.answer if self.answer_is_gold else None
        return STMItem(text=self.text, id=self.id, answer=answer, source=self.source, key=self.key, **kw)


def load_facts(path: str | os.PathLike | None = None, contradictions: bool = False) -> list[Fact]:
    """Load the fact set. By default only the 208 base facts; ``contradictions=True`` appends the 8
    deliberate contradictions (same key, new value) after them."""
    p = Path(path) if path is not None else data_dir() / "facts.jsonl"
    facts = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            d["train_questions"] = tuple(d["train_questions"])
            facts.append(Fact(**d))
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            raise ValueError(f"{p.name}, line {i}: bad fact ({e})") from e
    return facts if contradictions else [f for f in facts if f.supersedes is None]


def chunks(seq: list, size: int) -> list[list]:
    """Consecutive chunks of ``size`` (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def load_practice_facts(path: str | os.PathLike | None = None) -> list[Fact]:
    """Practice facts (``data/practice_facts.jsonl``, ids ``p001``…): same relations as the shipped facts, names
    disjoint from them; used only as residual-STM practice rows in training, never consolidated or evaluated."""
    return load_facts(path if path is not None else data_dir() / "practice_facts.jsonl")


def retention_prompts(path: str | os.PathLike | None = None) -> list[str]:
    """Generic prompts (``data/retention_prompts.txt``, one per line) for retention rows. The general text of
    the retention *check* (:func:`general_text`) is never among them."""
    p = Path(path) if path is not None else data_dir() / "retention_prompts.txt"
    return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def retention_passages(path: str | os.PathLike | None = None) -> list[str]:
    """Everyday prose passages (``data/retention_text.txt``, separated by blank lines) for teacher-forced
    retention rows. None of them is the general text of the retention *check* (:func:`general_text`)."""
    p = Path(path) if path is not None else data_dir() / "retention_text.txt"
    return [" ".join(block.split()) for block in p.read_text(encoding="utf-8").split("\n\n") if block.strip()]


def general_text() -> str:
    """A short general-knowledge text, used to check that memory does not damage base behaviour."""
    return (data_dir() / "general_text.txt").read_text(encoding="utf-8")
