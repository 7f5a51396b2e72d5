"""Self-study for notes that come without questions: every note gets at least ``k`` training questions and one
held-out question, so it can be consolidated and checked.

For each :class:`~stmltm_nb.memory.notes.Note`:

1. training questions: the note's own ``questions``; then questions the model writes about the note
   (:func:`~stmltm_nb.memory.questions.self_study_questions`, sampled, kept only when on topic); then generic
   probes about the note's topic ("What do you know about X?", "Summarise the note about X.", …) until there are
   ``k`` + 1 questions;
2. the held-out question: the note's ``heldout_question``, else one of those questions (a model-written one when
   there is one), removed from the training set, so the two are disjoint per note;
3. the answer the checks look for: the note's ``answer``, else a key term: a word of the base model's reply to the
   held-out question (with the note in context) that is in the note but not in the question, preferring numbers
   and names (:func:`key_term`). It is only ever used to *check* recall, never as a training target (the teacher
   answers with the note in context, as for every item).

The result is a list of :class:`~stmltm_nb.memory.facts.Fact` (relation ``"note"``), so every measurement that
takes the shipped facts takes your notes. Results are cached as JSON (``cache``) keyed by the model fingerprint,
the note and the settings, so a resumed stream does not redo the study.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stmltm_nb.env import progress_bar
from stmltm_nb.io import atomic_write_json
from stmltm_nb.memory.facts import Fact
from stmltm_nb.memory.notes import Note
from stmltm_nb.memory.questions import self_study_questions
from stmltm_nb.memory.stm import STMBuffer
from stmltm_nb.models import LoadedModel, model_fingerprint

GENERIC_PROBES = ("What do you know about {topic}?", "Summarise the note about {topic}.",
                  "What does the note about {topic} say?", "Tell me about {topic}.",
                  "Recall the note about {topic}.")
STUDY_VERSION = 1
MAX_K = len(GENERIC_PROBES) - 1  # the generic probes alone can always give k training + 1 held-out question

_LEAD = {"the", "a", "an", "my", "our", "your", "their", "his", "her", "its", "this", "that", "these", "those"}
_CUT = {"is", "are", "was", "were", "be", "been", "has", "have", "had", "will", "would", "can", "could", "should",
        "must", "may", "does", "did", "do", "to", "in", "at", "on", "for", "of", "by", "with", "from", "and", "or",
        "but", "because", "when", "where", "which", "who", "that", "now", "then", "always", "never", "not"}
_STOP = _LEAD | _CUT | {"what", "about", "note", "it", "there", "they", "them", "you", "i", "we", "he", "she",
                        "yes", "no", "so", "as", "if", "than", "also", "very", "into", "over", "under", "called"}
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-_.]*[A-Za-z0-9]|[A-Za-z0-9]")


def words(text: str) -> list[str]:
    """Word tokens (letters, digits and inner ``'-_.``), in order, case kept."""
    return _WORD.findall(text)


def note_topic(note: Note) -> str:
    """What a note is about, for the generic probes: the subject part of ``key`` (``relation:subject``) when
    there is one, else the note's first words up to the first verb-like or linking word (at most 4 words,
    leading articles dropped). A heuristic: it needs no model and never fails."""
    if note.key:
        return note.key.split(":", 1)[-1].strip() or note.key
    ws = words(note.text)
    while ws and ws[0].lower() in _LEAD:
        ws = ws[1:]
    out: list[str] = []
    for w in ws[:4]:
        if out and (w.lower() in _CUT or w.lower().endswith("ed")):
            break
        out.append(w)
    return " ".join(out) or note.text.strip()[:40]


def key_term(note_text: str, reply: str, question: str) -> str:
    """The word the recall check looks for when a note has no answer: a word of ``reply`` that appears in the
    note and not in the question (numbers and capitalised words first, then the longest); else such a word of the
    note itself; else the note's longest word. Never empty."""
    in_note = {w.lower() for w in words(note_text)}
    asked = {w.lower() for w in words(question)}

    def best(cands: list[str]) -> str | None:
        ok = [w for w in cands if w.lower() in in_note and w.lower() not in asked and w.lower() not in _STOP
              and len(w) >= 2]
        if not ok:
            return None
        return max(ok, key=lambda w: (any(c.isdigit() for c in w) or w[0].isupper(), len(w)))

    ws = words(note_text)
    return best(words(reply)) or best(ws) or max(ws or [note_text.strip()], key=len)


def _self_questions(lm: LoadedModel, note: Note, n: int, seed: int) -> list[str]:
    return self_study_questions(lm, note.to_item(), n=n, seed=seed) if n > 0 else []


def study_note(lm: LoadedModel, note: Note, k: int = 2, seed: int = 0) -> Fact:
    """One note as a :class:`Fact` with ≥ ``k`` training questions, a disjoint held-out question and the answer
    its checks look for (see the module docstring). ``k`` >= 1."""
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k (training questions per note) must be in [1, {MAX_K}], got {k}")
    given = list(dict.fromkeys(q for q in note.questions if q.strip() and q != note.heldout_question))
    need = k + (0 if note.heldout_question else 1) - len(given)
    written = [q for q in _self_questions(lm, note, max(0, need), seed)
               if q not in given and q != note.heldout_question]
    topic = note_topic(note)
    generic = [g.format(topic=topic) for g in GENERIC_PROBES]
    pool = given + written
    for g in generic:
        if len(pool) >= k + (0 if note.heldout_question else 1):
            break
        if g not in pool and g != note.heldout_question:
            pool.append(g)
    if note.heldout_question:
        held, train = note.heldout_question, [q for q in pool if q != note.heldout_question]
    else:
        held = written[0] if written else pool[-1]
        train = [q for q in pool if q != held]
    answer = note.answer
    if not answer:
        buf = STMBuffer(lm)
        buf.append(note.to_item())
        answer = key_term(note.text, buf.answer(held, max_new_tokens=32), held)
    return Fact(id=note.id, key=note.key or f"note:{note.id}", relation="note", subject=topic, text=note.text,
                answer=answer, train_questions=tuple(train), heldout_question=held, source="notes",
                answer_is_gold=bool(note.answer))


def study_notes(lm: LoadedModel, notes: Sequence[Note], k: int = 2, seed: int = 0,
                cache: str | Path | None = None, progress: bool = False) -> list[Fact]:
    """:func:`study_note` for every note (seed ``seed + i`` for the i-th), read from / written to the JSON
    ``cache`` when given (one entry per note, keyed by model, note and settings)."""
    path = Path(cache) if cache is not None else None
    stored: dict[str, Any] = {}
    if path is not None and path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            stored = {}  # a corrupt cache is recomputed, never trusted
        if not isinstance(stored, dict):
            stored = {}
    fp = model_fingerprint(lm)
    out: list[Fact] = []
    bar = progress_bar(len(notes), "self-study questions", progress)
    for i, note in enumerate(notes):
        key = hashlib.sha256(json.dumps([STUDY_VERSION, fp, k, seed + i, note.id, note.text, note.answer,
                                         list(note.questions), note.heldout_question, note.key]).encode()).hexdigest()
        hit = stored.get(key)
        fact = None
        if isinstance(hit, dict):
            try:
                fact = Fact(**{**hit, "train_questions": tuple(hit["train_questions"])})
            except (TypeError, KeyError):
                fact = None  # a badly shaped entry is recomputed
        if fact is not None:
            out.append(fact)
        else:
            fact = study_note(lm, note, k, seed + i)
            stored[key] = {**fact.__dict__, "train_questions": list(fact.train_questions)}
            out.append(fact)
        bar.update(1)
    bar.close()
    if path is not None:
        atomic_write_json(path, stored)
    return out
