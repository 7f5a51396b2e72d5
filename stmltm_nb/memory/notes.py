"""Your own notes as STM items: read a ``.txt`` (one note per line) or ``.jsonl`` file, validated line by line.

``.txt``: one note per line; blank lines are ignored; ids are ``n001``, ``n002``… in file order.
``.jsonl``: one JSON object per line with ``text`` (required) and the optional fields ``id``, ``answer``,
``questions`` (training questions), ``heldout_question`` (a question never trained on), ``key`` (notes sharing a
key are versions of one fact: the newer wins) and ``time`` (seconds since the epoch).

Every error is a :class:`NotesError` naming the file and the line; nothing is read half-way. Torch-free.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stmltm_nb.memory.items import STMError, STMItem, validate_item

NOTE_FIELDS = ("text", "id", "answer", "questions", "heldout_question", "key", "time")
MAX_FILE_BYTES = 50_000_000  # 50 MB: a notes file, not a corpus


class NotesError(ValueError):
    """A notes file that cannot be used (the message names the file and the line)."""


@dataclass(frozen=True)
class Note:
    """One note of yours: ``text`` goes into STM; ``questions`` (training) and ``heldout_question`` are optional
    (self-study writes them when missing, :mod:`stmltm_nb.memory.study`); ``answer`` is the optional y_i."""

    text: str
    id: str
    answer: str | None = None
    questions: tuple[str, ...] = ()
    heldout_question: str | None = None
    key: str | None = None
    time: float | None = None
    line: int = field(default=0, compare=False)  # line of the file it came from (1-based; 0: built in code)

    def to_item(self) -> STMItem:
        """The note as an STM item (source ``notes``)."""
        kw = {"time": self.time} if self.time is not None else {}
        return STMItem(text=self.text, id=self.id, answer=self.answer, source="notes", key=self.key, **kw)


def read_notes(path: str | os.PathLike) -> list[Note]:
    """Parse a notes file (``.txt`` or ``.jsonl``, chosen by the suffix; anything else is read as ``.txt``).

    Raises :class:`NotesError` for a missing, empty, binary or non-UTF-8 file, a ``.jsonl`` line that is not an
    object or lacks ``text``, a bad field, or a duplicate id."""
    path = Path(path)
    text = _read_text(path)
    notes = _parse_jsonl(path, text) if path.suffix.lower() == ".jsonl" else _parse_txt(path, text)
    if not notes:
        raise NotesError(f"{path}: no notes (the file holds only blank lines)")
    seen: dict[str, int] = {}
    for n in notes:
        if n.id in seen:
            raise NotesError(f"{path.name}, line {n.line}: duplicate id {n.id!r} (first on line {seen[n.id]})")
        seen[n.id] = n.line
    return notes


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise NotesError(f"{path}: no such file" if not path.exists() else f"{path} is not a file")
    size = path.stat().st_size
    if size == 0:
        raise NotesError(f"{path}: the file is empty")
    if size > MAX_FILE_BYTES:
        raise NotesError(f"{path}: {size} bytes is larger than a notes file may be ({MAX_FILE_BYTES} bytes)")
    data = path.read_bytes()
    if b"\x00" in data:
        raise NotesError(f"{path}: a binary file (it holds NUL bytes), not text notes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise NotesError(f"{path.name}, line {line}: not valid UTF-8 (byte {data[e.start]:#04x} at offset "
                         f"{e.start}); save the file as UTF-8") from None


def _checked(path: Path, line: int, note: Note) -> Note:
    try:
        validate_item(note.to_item())
    except STMError as e:
        raise NotesError(f"{path.name}, line {line}: {e}") from None
    return note


def _parse_txt(path: Path, text: str) -> list[Note]:
    notes: list[Note] = []
    for i, raw in enumerate(text.splitlines(), 1):
        if raw.strip():
            notes.append(_checked(path, i, Note(text=raw.strip(), id=f"n{len(notes) + 1:03d}", line=i)))
    return notes


def _parse_jsonl(path: Path, text: str) -> list[Note]:
    rows: list[tuple[int, dict]] = []
    for i, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            rows.append((i, json.loads(raw)))
        except json.JSONDecodeError as e:
            raise NotesError(f"{path.name}, line {i}: not valid JSON ({e.msg})") from None
    explicit = {d.get("id") for _, d in rows if isinstance(d, dict)}
    auto = (f"n{j:03d}" for j in range(1, 10**6) if f"n{j:03d}" not in explicit)  # never an id the file uses
    notes: list[Note] = []
    for i, d in rows:
        where = f"{path.name}, line {i}"
        default = next(auto) if isinstance(d, dict) and not d.get("id") else ""
        notes.append(_checked(path, i, _note_from(d, where, default, i)))
    return notes


def _note_from(d: Any, where: str, default_id: str, line: int) -> Note:
    if not isinstance(d, dict):
        raise NotesError(f"{where}: each line must be a JSON object with a 'text' field, got {type(d).__name__}")
    unknown = sorted(set(d) - set(NOTE_FIELDS))
    if unknown:
        raise NotesError(f"{where}: unknown fields {unknown} (allowed: {', '.join(NOTE_FIELDS)})")
    if "text" not in d:
        raise NotesError(f"{where}: the object has no 'text' field")
    if not isinstance(d["text"], str):
        raise NotesError(f"{where}: 'text' must be a string, got {type(d['text']).__name__}")
    for name in ("id", "answer", "heldout_question", "key"):
        if d.get(name) is not None and not isinstance(d[name], str):
            raise NotesError(f"{where}: {name!r} must be a string, got {type(d[name]).__name__}")
    qs = d.get("questions", [])
    if not isinstance(qs, list) or not all(isinstance(q, str) and q.strip() for q in qs):
        raise NotesError(f"{where}: 'questions' must be a list of non-empty strings")
    t = d.get("time")
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))):
        raise NotesError(f"{where}: 'time' must be a number (seconds since the epoch), got {t!r}")
    held = d.get("heldout_question")
    return Note(text=d["text"].strip(), id=d.get("id") or default_id, answer=d.get("answer"),
                questions=tuple(q.strip() for q in qs), heldout_question=held.strip() if held else None,
                key=d.get("key"), time=float(t) if t is not None else None, line=line)


def check_note_lengths(notes: list[Note], tokenizer: Any, max_tokens: int) -> None:
    """Raise :class:`NotesError` for the first note longer than ``max_tokens`` tokens (it would not fit the
    model's window together with a question and an answer)."""
    from stmltm_nb.prompts import encode

    for n in notes:
        length = len(encode(tokenizer, n.text))
        if length > max_tokens:
            raise NotesError(f"line {n.line} (note {n.id!r}): {length} tokens is longer than the window allows "
                             f"for one note ({max_tokens} tokens); split it into shorter notes")


def notes_jsonl(notes: list[Note]) -> str:
    """Notes as ``.jsonl`` text (the fields above, empty ones left out); :func:`read_notes` reads it back."""
    rows = []
    for n in notes:
        d = {"text": n.text, "id": n.id, "answer": n.answer, "questions": list(n.questions),
             "heldout_question": n.heldout_question, "key": n.key, "time": n.time}
        rows.append(json.dumps({k: v for k, v in d.items() if v not in (None, [])}, ensure_ascii=False))
    return "\n".join(rows) + "\n"
