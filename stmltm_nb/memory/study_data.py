"""Study data for a cartridge that generalises and lives beside new notes: diverse study wordings per relation,
"Tell me about …" rows, and a pool of distractor facts to stand in as residual notes. Torch-free, pure data.

* ``data/study_wordings.json`` (:func:`load_study_wordings`): per shipped relation ≥ 8 training wordings (the two
  templates of ``facts.jsonl`` first), "about" wordings whose answer is the fact's own sentence, and
  ``about_default`` for a fact of any other relation. No wordings for the relations of the final split only.
* ``data/distractor_facts.jsonl`` (:func:`load_distractor_facts`, :func:`distractor_items`): fictional facts of
  relations no fact file uses, never in a cartridge.

The checks (:func:`check_study_wordings`, :func:`check_distractor_pool`) raise ``ValueError`` naming the item, and
need no model: call them before any teacher pass. Built by ``data/build_study.py``; see ``data/README.md``.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stmltm_nb.memory.facts import COMMON_WORDS, Fact, invented_names
from stmltm_nb.memory.items import STMItem
from stmltm_nb.shipped import data_dir

STUDY_FILE = "study_wordings.json"
DISTRACTOR_FILE = "distractor_facts.jsonl"
# Words of distractor subjects that are not invented names (as COMMON_WORDS for the facts).
POOL_WORDS = frozenset({"Bakery", "Bridge", "Lighthouse", "Rovers", "Mine", "Museum", "Gazette", "Club", "Garden",
                        "Teahouse", "Air", "Lake"})


@dataclass(frozen=True)
class StudyWordings:
    """Templates with ``{s}`` for the subject: ``relations`` (training wordings per relation), ``about`` ("Tell
    me about …" per relation) and ``about_default`` (for a relation without its own)."""

    relations: dict[str, tuple[str, ...]]
    about: dict[str, tuple[str, ...]]
    about_default: tuple[str, ...]


@dataclass(frozen=True)
class Distractor:
    """A distractor fact: never consolidated; its ``text`` stands in as a residual note."""

    id: str
    key: str
    relation: str
    subject: str
    text: str
    answer: str
    pattern: int = 0  # which sentence pattern of its relation the text uses

    def to_item(self) -> STMItem:
        return STMItem(text=self.text, id=self.id, answer=self.answer, source="distractors", key=self.key)


def _template(w: Any, where: str) -> str:
    if not isinstance(w, str) or w.count("{s}") != 1 or "{" in w.replace("{s}", "") or "}" in w.replace("{s}", ""):
        raise ValueError(f"{where}: a study wording must be a string naming the subject once as {{s}}, got {w!r}")
    return w


def load_study_wordings(path: str | os.PathLike | None = None) -> StudyWordings:
    """Read ``data/study_wordings.json`` (or ``path``), checking its shape."""
    p = Path(path) if path is not None else data_dir() / STUDY_FILE
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        rel = {r: tuple(_template(w, f"{p.name}, {r}") for w in ws) for r, ws in d["relations"].items()}
        about = {r: tuple(_template(w, f"{p.name}, about {r}") for w in ws) for r, ws in d["about"].items()}
        default = tuple(_template(w, f"{p.name}, about_default") for w in d["about_default"])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{p.name}: bad study wordings file ({e!r})") from e
    return StudyWordings(rel, about, default)


def study_questions(fact: Fact, n: int | None = None, wordings: StudyWordings | None = None,
                    seed: int | None = None) -> list[str]:
    """Up to ``n`` (all when None) study wordings of ``fact``'s relation with its subject filled in; a relation
    without wordings (the final split's own, a note of yours) has its ``train_questions``. File order (the two
    training templates first) unless ``seed`` is given: then a shuffle fixed by (seed, fact id)."""
    w = wordings if wordings is not None else load_study_wordings()
    rel = w.relations.get(fact.relation)
    qs = [t.format(s=fact.subject) for t in rel] if rel else list(fact.train_questions)
    if seed is not None:
        random.Random(f"{seed}:{fact.id}").shuffle(qs)
    return qs if n is None else qs[: max(0, n)]


def about_rows(fact: Fact, n: int | None = 1, wordings: StudyWordings | None = None) -> list[tuple[str, str]]:
    """Up to ``n`` (question, answer) rows "Tell me about <subject>." whose answer is the fact's own sentence."""
    w = wordings if wordings is not None else load_study_wordings()
    ts = w.about.get(fact.relation) or w.about_default
    rows = [(t.format(s=fact.subject), fact.text) for t in ts]
    return rows if n is None else rows[: max(0, n)]


def load_distractor_facts(path: str | os.PathLike | None = None) -> list[Distractor]:
    """The distractor pool (``data/distractor_facts.jsonl`` or ``path``), one fact a line."""
    p = Path(path) if path is not None else data_dir() / DISTRACTOR_FILE
    out = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(Distractor(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as e:
                raise ValueError(f"{p.name}, line {i}: bad distractor ({e})") from e
    return out


def distractor_items(path: str | os.PathLike | None = None) -> list[STMItem]:
    """The distractor pool as STM items (``source="distractors"``), ready for ``batching.residual_pool``."""
    return [d.to_item() for d in load_distractor_facts(path)]


def _norm(q: str) -> str:
    """A wording as compared: lower case, punctuation dropped, single spaces."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", q.lower()).split())


def check_study_wordings(facts: Iterable[Fact], wordings: StudyWordings | Mapping[str, Sequence[str]]) -> None:
    """Raise ``ValueError`` naming the fact and both wordings if a study or "about" wording, subject filled in,
    equals a held-out wording (any split, or the single ``heldout_question``) of any of ``facts`` (lower-cased,
    punctuation dropped). ``wordings``: loaded, or a plain ``{relation: [template, …]}``."""
    if not isinstance(wordings, StudyWordings):
        wordings = StudyWordings({r: tuple(ws) for r, ws in wordings.items()}, {}, ())
    facts = list(facts)
    held: dict[str, tuple[str, str, str]] = {}
    for f in facts:
        sets = dict(f.heldout_questions) | {"heldout_question": (f.heldout_question,) if f.heldout_question else ()}
        for split, ws in sets.items():
            for w in ws:
                held.setdefault(_norm(w), (f.id, split, w))
    for f in facts:
        ts = list(wordings.relations.get(f.relation, ())) + list(wordings.about.get(f.relation)
                                                                  or wordings.about_default)
        for t in ts:
            q = _template(t, f"relation {f.relation}").format(s=f.subject)
            if _norm(q) in held:
                hid, split, w = held[_norm(q)]
                raise ValueError(f"fact {f.id}: study wording {q!r} collides with held-out wording {w!r} "
                                 f"({split!r} of fact {hid})")


def _names(x: Any) -> set[str]:
    """The invented names of an item, lower-cased: a fact's :func:`~stmltm_nb.memory.facts.invented_names`; else the
    capitalised words of its subject (an STM item's is the part of its ``key`` after the relation) and answer, template
    words left out."""
    if isinstance(x, Fact):
        return {w.lower() for w in invented_names(x)}
    subject = getattr(x, "subject", None) or ((getattr(x, "key", None) or "").partition(":")[2])
    words = re.findall(r"[A-Za-z]+", f"{subject} {getattr(x, 'answer', None) or ''}")
    return {w.lower() for w in words if w[0].isupper() and w not in COMMON_WORDS | POOL_WORDS}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def check_distractor_pool(pool: Iterable[Any], consolidated_items: Iterable[Any],
                          also_clear_of: Iterable[Any] = ()) -> None:
    """Raise ``ValueError`` naming the pool entry and the item if a distractor (a :class:`Distractor`, fact or STM
    item) shares an id, its text or an invented name (of its subject or answer) with an item being consolidated,
    or with an item of ``also_clear_of`` (pass the sealed final split where a caller has it loaded)."""
    groups = [("item being consolidated", list(consolidated_items)), ("fact to stay clear of", list(also_clear_of))]
    pool = list(pool)
    for label, items in groups:
        ids = {it.id: it for it in items}
        texts = {_norm(it.text): it for it in items}
        names: dict[str, Any] = {}  # an item's invented names
        words: dict[str, Any] = {}  # ... and every word of its text
        for it in items:
            for w in _names(it):
                names.setdefault(w, it)
            for w in _names(it) | _words(it.text):
                words.setdefault(w, it)
        for d in pool:
            if d.id in ids:
                raise ValueError(f"distractor {d.id} has the id of the {label} {d.id} ({ids[d.id].text!r})")
            if _norm(d.text) in texts:
                raise ValueError(f"distractor {d.id} ({d.text!r}) is the text of the {label} "
                                 f"{texts[_norm(d.text)].id}")
            # a name of the distractor in the item, or a name of the item in the distractor
            hits = [(w, words[w]) for w in sorted(_names(d)) if w in words]
            hits += [(w, names[w]) for w in sorted(_words(d.text)) if w in names]
            if hits:
                w, it = hits[0]
                raise ValueError(f"distractor {d.id} ({d.text!r}) shares the name {w.capitalize()!r} with the "
                                 f"{label} {it.id} ({it.text!r})")


def training_wordings(facts: Sequence[Fact], study: int = 0, about: int = 0,
                      wordings: StudyWordings | None = None) -> dict[str, list[str]]:
    """The training questions per fact id for a recipe with diverse self-study: the fact's two ``train_questions``,
    then up to ``study`` more study wordings of its relation (file order, so the same ones in every run), then
    ``about`` "Tell me about …" questions (their answer is the fact's own sentence: the teacher, with the fact in
    context, says it, and where its answer misses the value the sentence is the target). ``study = about = 0`` is
    today's recipe. Checked before any teacher pass: a wording that equals one of the facts' held-out wordings
    raises ``ValueError`` naming the fact (:func:`check_study_wordings`)."""
    if study < 0 or about < 0:
        raise ValueError(f"study and about must be >= 0, got {study} and {about}")
    facts = list(facts)
    if study == 0 and about == 0:
        return {f.id: list(f.train_questions) for f in facts}
    w = wordings if wordings is not None else load_study_wordings()
    check_study_wordings(facts, w)
    out = {}
    for f in facts:
        qs = list(f.train_questions)
        qs += [q for q in study_questions(f, wordings=w) if q not in qs][:study]
        qs += [q for q, _ in about_rows(f, about, wordings=w) if q not in qs]
        out[f.id] = qs
    return out
