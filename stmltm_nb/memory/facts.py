"""The shipped fact set (``data/facts.jsonl``): fictional facts with training and held-out questions.

Schema (one JSON object per line): ``id``, ``key`` (relation:subject; a contradiction shares its key),
``relation``, ``subject``, ``text`` (the STM item), ``answer`` (y_i), ``train_questions`` (2 templates),
``heldout_question`` (1 paraphrase never trained on), ``heldout_questions`` (the held-out bank:
``{"tune": [...], "report": [...], "final": [...]}``, three disjoint sets of paraphrases never trained on),
``supersedes`` (id of the fact a contradiction replaces, else null). See ``data/README.md``.

The final split (``data/final_facts.jsonl``, ids ``x001``…) is sealed: :func:`load_facts` never returns it; only
:func:`load_final_facts` (or ``load_facts(split="final")``) reads it, and no run does until the recipe is frozen
at the end of the memory work. Every load checks the question bank (a held-out wording equal to a training one,
sets that overlap) and, for the final split, that no invented name is shared with an earlier split: a
``ValueError`` naming the fact and the wording or name, before any model loads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stmltm_nb.memory.items import STMItem
from stmltm_nb.shipped import data_dir

HELDOUT_SPLITS = ("tune", "report", "final")  # the held-out wording sets; "tune"/"report" as in measure_job.SPLITS
FINAL_FILE = "final_facts.jsonl"
EARLIER_FILES = ("facts.jsonl", "practice_facts.jsonl")  # the splits the final one must share no name with
# Words of subjects and answers that are template or everyday words, not invented names.
COMMON_WORDS = frozenset({
    "The", "Chronicle", "Works", "Engine", "Academy", "Tower", "And",
    "Crimson", "Gold", "Teal", "Silver", "Violet", "White", "Amber", "Black", "Green", "Copper", "Navy", "Orange",
    "Scarlet", "Grey", "Indigo", "Lime", "Ochre", "Blue", "Rose", "Charcoal", "Saffron", "Jade", "Maroon", "Ivory",
    "Cobalt", "Yellow", "Plum", "Bronze", "Mint", "Purple",
})


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
    # The held-out bank {"tune": (...), "report": (...), "final": (...)}; empty for a fact without one (your notes).
    heldout_questions: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    def heldout_for(self, split: str) -> tuple[str, ...]:
        """The held-out wordings of ``split`` ("tune", "report" or "final"); a fact without a bank (a note of
        yours) has its single ``heldout_question`` for every split."""
        if split not in HELDOUT_SPLITS:
            raise ValueError(f"held-out split must be one of {HELDOUT_SPLITS}, got {split!r}")
        if not self.heldout_questions:
            return (self.heldout_question,)
        if split not in self.heldout_questions:
            raise ValueError(f"fact {self.id}: no {split!r} held-out wordings")
        return tuple(self.heldout_questions[split])

    def to_item(self, time: float | None = None) -> STMItem:
        """The fact as an STM item (x_i = text, y_i = answer when it is gold; a key term found by self-study
        is for the checks only, never a training target)."""
        kw = {"time": time} if time is not None else {}
        answer = self.answer if self.answer_is_gold else None
        return STMItem(text=self.text, id=self.id, answer=answer, source=self.source, key=self.key, **kw)


def _norm(q: str) -> str:
    """A wording as compared for sameness: lower case, single spaces, no closing punctuation."""
    return " ".join(q.lower().split()).rstrip("?.! ")


def check_question_bank(facts: Iterable[Fact], home: str = "tune", where: str = "") -> None:
    """Raise ``ValueError`` naming the fact and the wording if a held-out wording equals a training wording of the
    same fact (compared lower-cased, spaces collapsed), if two held-out sets share a wording (naming both sets) or
    one set has it twice, if
    a set is missing or empty, or if the single ``heldout_question`` is in a set other than ``home`` (the shipped
    facts' one was read by earlier tuning and report runs, so it may be a ``tune`` wording only)."""
    at = f"{where}: " if where else ""
    for f in facts:
        train = {_norm(q): q for q in f.train_questions}
        singles = [f.heldout_question] if f.heldout_question else []
        bank = f.heldout_questions
        if bank:
            if set(bank) != set(HELDOUT_SPLITS) or any(not ws or not all(isinstance(w, str) and w.strip()
                                                                         for w in ws) for ws in bank.values()):
                raise ValueError(f"{at}fact {f.id}: heldout_questions must have non-empty wording lists for "
                                 f"exactly {list(HELDOUT_SPLITS)}, got {dict(bank)!r}")
        for w in singles + [w for ws in bank.values() for w in ws]:
            if _norm(w) in train:
                raise ValueError(f"{at}fact {f.id}: held-out wording {w!r} equals training wording "
                                 f"{train[_norm(w)]!r}")
        seen: dict[str, str] = {}
        for split in HELDOUT_SPLITS if bank else ():
            for w in bank[split]:
                other = seen.get(_norm(w))
                if other is not None:
                    where_else = f"twice in the {split!r} set" if other == split else \
                        f"in both the {other!r} and the {split!r} sets"
                    raise ValueError(f"{at}fact {f.id}: held-out wording {w!r} is {where_else}")
                seen[_norm(w)] = split
            if f.heldout_question and split != home and _norm(f.heldout_question) in map(_norm, bank[split]):
                raise ValueError(f"{at}fact {f.id}: its heldout_question {f.heldout_question!r} is in the "
                                 f"{split!r} set; it may only be a {home!r} wording")


def invented_names(f: Fact) -> set[str]:
    """The invented words of a fact's subject and answer (capitalised; template and everyday words left out)."""
    words = (w.strip("'.,").capitalize() for part in (f.subject, f.answer) for w in part.split())
    return {w for w in words if w[:1].isalpha() and w not in COMMON_WORDS}


def check_names_disjoint(final: Iterable[Fact], earlier: Iterable[Fact], where: str = "") -> None:
    """Raise ``ValueError`` naming the fact and the name if a final-split fact shares an invented name (a word of
    its subject or answer) with a fact of an earlier split."""
    by_name: dict[str, str] = {}
    for e in earlier:
        for w in invented_names(e):
            by_name.setdefault(w, e.id)
    at = f"{where}: " if where else ""
    for f in final:
        for w in sorted(invented_names(f)):
            if w in by_name:
                raise ValueError(f"{at}final fact {f.id} shares the name {w!r} with earlier fact {by_name[w]}")


def _read(p: Path) -> list[Fact]:
    facts = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            d["train_questions"] = tuple(d["train_questions"])
            bank = d.get("heldout_questions") or {}
            if not isinstance(bank, dict) or not all(isinstance(v, list) for v in bank.values()):
                raise TypeError(f"heldout_questions must map a split to a list of wordings, got {bank!r}")
            d["heldout_questions"] = {k: tuple(v) for k, v in bank.items()}
            facts.append(Fact(**d))
        except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as e:
            raise ValueError(f"{p.name}, line {i}: bad fact ({e})") from e
    return facts


def load_facts(path: str | os.PathLike | None = None, contradictions: bool = False,
               split: str | None = None) -> list[Fact]:
    """Load the fact set. By default only the 208 base facts; ``contradictions=True`` appends the 8
    deliberate contradictions (same key, new value) after them. The question bank is checked on load.

    The sealed final split is never read unless asked for by name: ``split="final"`` (same as
    :func:`load_final_facts`); ``split=None`` (default) reads ``facts.jsonl`` and refuses the final file."""
    if split == "final":
        return load_final_facts(path, contradictions)
    if split is not None:
        raise ValueError(f"split must be None (the shipped facts; the tune and report splits are slices of them) "
                         f"or 'final', got {split!r}")
    p = Path(path) if path is not None else data_dir() / "facts.jsonl"
    if p.name == FINAL_FILE:
        raise ValueError(f"{p} is the sealed final split: read it only with load_final_facts (or split='final')")
    facts = _read(p)
    check_question_bank(facts, "tune", p.name)
    return facts if contradictions else [f for f in facts if f.supersedes is None]


def load_final_facts(path: str | os.PathLike | None = None, contradictions: bool = False,
                     earlier: Sequence[str | os.PathLike] | None = None) -> list[Fact]:
    """The sealed final split (``data/final_facts.jsonl``, ids ``x001``…; contradictions ``xc001``…): new facts,
    a third of them from relations no other split uses, asked with the ``final`` wordings. No run reads it until
    the recipe is frozen at the end of the memory work; the only caller outside the tests is the CLI's explicit
    ``--split final``. Checked on load: the question bank (``final`` home) and that no fact shares an invented
    name with ``earlier`` (default: the shipped ``facts.jsonl`` and ``practice_facts.jsonl``)."""
    p = Path(path) if path is not None else data_dir() / FINAL_FILE
    facts = _read(p)
    check_question_bank(facts, "final", p.name)
    earlier_paths = [Path(e) for e in earlier] if earlier is not None else [data_dir() / n for n in EARLIER_FILES]
    prior = [f for e in earlier_paths for f in _read(e)]
    check_names_disjoint(facts, prior, p.name)
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
