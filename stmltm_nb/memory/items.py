"""STM items (x_i, y_i): the record, its validation, and the JSONL form they are stored in. Torch-free."""

from __future__ import annotations

import json
import math
import os
import re
import time as _time
import unicodedata
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class STMError(ValueError):
    """Bad input to the STM buffer (the buffer is left unchanged)."""


class STMCapacityError(STMError):
    """Appending would exceed the STM's token budget (``max_tokens``)."""


class STMFileError(STMError):
    """An STM JSONL file is corrupt or unreadable (nothing was overwritten)."""


@dataclass
class STMItem:
    """One STM item (x_i, y_i): ``text`` is what goes into the context; ``answer`` is the optional y_i."""

    text: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    answer: str | None = None
    source: str | None = None
    key: str | None = None
    time: float = field(default_factory=_time.time)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> STMItem:
        if not isinstance(d, dict):
            raise STMError(f"an STM item must be a JSON object, got {type(d).__name__}")
        unknown = set(d) - {"text", "id", "answer", "source", "key", "time"}
        if unknown:
            raise STMError(f"unknown STM item fields: {sorted(unknown)}")
        if "text" not in d:
            raise STMError("an STM item needs a 'text' field")
        item = cls(**d)
        validate_item(item)
        return item


ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@+-]{0,127}")
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"}  # controls, format, spaces, marks


def _check_unicode(name: str, v: str) -> None:
    try:
        v.encode("utf-8")
    except UnicodeEncodeError as e:
        raise STMError(f"STM item {name} contains a lone surrogate {v[e.start]!r} at character {e.start} "
                       "(not valid Unicode)") from None


def _visible(text: str) -> bool:
    """True when ``text`` has at least one character that shows (not whitespace, zero-width or a control)."""
    return any(unicodedata.category(c) not in _INVISIBLE for c in text)


def validate_item(item: STMItem) -> None:
    """Raise :class:`STMError` naming the field unless the item has visible text (valid Unicode), a safe id
    (letters, digits and ``_.:@+-``, at most 128 characters, no ``..``, no newline or slash) and well-typed
    optional fields."""
    if not isinstance(item.text, str):
        raise STMError(f"STM item text must be a string, got {type(item.text).__name__}")
    _check_unicode("text", item.text)
    if not _visible(item.text):
        raise STMError("STM item text is empty, whitespace or only invisible characters (zero-width, controls)")
    if not isinstance(item.id, str) or not item.id.strip():
        raise STMError("STM item id must be a non-empty string")
    if not ID_PATTERN.fullmatch(item.id) or ".." in item.id:
        raise STMError(f"STM item id {item.id[:40]!r} is not allowed: use at most 128 letters, digits and _.:@+- "
                       "(no '..', slashes, spaces or newlines)")
    for name in ("answer", "source", "key"):
        v = getattr(item, name)
        if v is not None and not isinstance(v, str):
            raise STMError(f"STM item {name} must be a string or None, got {type(v).__name__}")
        if v is not None:
            _check_unicode(name, v)
    if isinstance(item.time, bool) or not isinstance(item.time, (int, float)) or not math.isfinite(item.time):
        raise STMError("STM item time must be a finite number (seconds since the epoch)")


def items_jsonl(items: list[STMItem]) -> str:
    """Items as JSONL text, one object per line (:func:`read_items` reads it back)."""
    return "".join(json.dumps(it.to_json(), ensure_ascii=False) + "\n" for it in items)


def read_items(path: str | os.PathLike) -> list[STMItem]:
    """Parse an STM JSONL file; a corrupt line raises :class:`STMFileError` naming the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise STMFileError(f"cannot read STM file {path}: {e}") from e
    items: list[STMItem] = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            items.append(STMItem.from_json(json.loads(line)))
        except (json.JSONDecodeError, TypeError, STMError) as e:
            raise STMFileError(f"{path.name}, line {i}: corrupt STM item ({e})") from e
    return items
