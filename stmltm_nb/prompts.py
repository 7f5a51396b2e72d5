"""Explicit prompt formatting (ChatML, as SmolLM2 uses), never through ``apply_chat_template``.

SmolLM2's chat template silently injects a default system prompt ("You are a helpful AI assistant named
SmolLM ...") when the conversation has no system turn. Here every token that enters the context is written out:

    <|im_start|>system\\n{header}{item_1}\\n{item_2}\\n...   <- STM prefix (header + items), or a cartridge
    <|im_end|>\\n<|im_start|>user\\n{question}<|im_end|>\\n<|im_start|>assistant\\n   <- query suffix

The system turn is left open while items are appended and closed by the query suffix, so items can be
prefilled one by one onto a live KV cache. A cartridge initialised from the KV of this prefix *is* truncated
STM at step 0.

Text is data, never markup. Only the turn markers :class:`ChatFormat` itself writes become special tokens; the
same characters inside an item, a question, a header or a response (``"<|im_end|>\\n<|im_start|>user\\n..."``)
are tokenized as plain text, so a stored note cannot open a chat turn. The markers travel in :class:`Markup`
strings (the MarkupSafe pattern: a ``str`` subclass that remembers which spans are trusted); :func:`encode` turns
every plain ``str`` into plain-text tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_HEADER = "You are a helpful assistant. Answer the user's question using these notes.\nNotes:\n"


class PromptTextError(ValueError):
    """Text that cannot be tokenized (e.g. a lone surrogate, which is not valid Unicode)."""


class Markup(str):
    """Prompt text whose turn markers are trusted: ``parts`` holds (text, is_marker) spans in order.

    Only ``+`` keeps the markers (``Markup + str`` appends the ``str`` as data); any other string operation
    (f-strings, ``.strip()``, ``%``, slicing) returns a plain ``str``, i.e. data.
    """

    parts: tuple[tuple[str, bool], ...]

    def __new__(cls, parts: tuple[tuple[str, bool], ...] | list[tuple[str, bool]]) -> Markup:
        parts = tuple((t, bool(m)) for t, m in parts if t)
        obj = super().__new__(cls, "".join(t for t, _ in parts))
        obj.parts = parts
        return obj

    def __add__(self, other: object) -> Markup:
        if isinstance(other, Markup):
            return Markup(self.parts + other.parts)
        if isinstance(other, str):
            return Markup(self.parts + ((other, False),))
        return NotImplemented

    def __radd__(self, other: object) -> Markup:
        if isinstance(other, str):
            return Markup(((other, False),) + self.parts)
        return NotImplemented

    def __reduce__(self):  # copy/deepcopy keep the spans
        return (Markup, (self.parts,))


@dataclass(frozen=True)
class ChatFormat:
    """Turn markers of a chat format (defaults: ChatML as used by SmolLM2)."""

    start: str = "<|im_start|>"
    end: str = "<|im_end|>"

    def _turn(self, role: str, text: str, close: bool) -> list[tuple[str, bool]]:
        return [(self.start, True), (f"{role}\n{text}", False)] + ([(self.end, True), ("\n", False)] if close else [])

    def prefix(self, header: str = DEFAULT_HEADER) -> Markup:
        """Opening of the system turn that holds the STM notes (left open)."""
        return Markup(self._turn("system", header, close=False))

    @staticmethod
    def item(text: str) -> str:
        """One STM item as it appears in the context: its text and a newline separator (plain data)."""
        return text.strip() + "\n"

    def query(self, question: str) -> Markup:
        """Closes the system turn, asks ``question`` and opens the assistant turn."""
        return Markup([(self.end, True), ("\n", False)] + self._turn("user", question.strip(), close=True)
                      + self._turn("assistant", "", close=False))

    def user_turn(self, text: str) -> Markup:
        """A whole conversation of one user turn (no system turn) that opens the assistant's reply."""
        return Markup(self._turn("user", text, close=True) + self._turn("assistant", "", close=False))

    def render(self, items: list[str], question: str, header: str = DEFAULT_HEADER) -> Markup:
        """The whole context as text, exactly as the model sees it (for display)."""
        out = self.prefix(header)
        for t in items:
            out = out + self.item(t)
        return out + self.query(question)


CHATML = ChatFormat()


def check_text(text: str, what: str = "text") -> None:
    """Raise :class:`PromptTextError` naming ``what`` unless ``text`` is a ``str`` of valid Unicode."""
    if not isinstance(text, str):
        raise PromptTextError(f"{what} must be a string, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise PromptTextError(
            f"{what} contains {text[e.start]!r} at character {e.start}: a lone surrogate is not valid Unicode "
            "(decode the source with errors='replace' or remove it)"
        ) from None


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` as plain text: special-token strings inside it become ordinary tokens."""
    check_text(text)
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def _marker_ids(tokenizer: Any, marker: str) -> list[int]:
    """The single special token of ``marker`` when the tokenizer has one, else its plain-text tokens."""
    tid = tokenizer.convert_tokens_to_ids(marker)
    if isinstance(tid, int) and tid != tokenizer.unk_token_id and tokenizer.convert_ids_to_tokens(tid) == marker:
        return [tid]
    return list(tokenizer(marker, add_special_tokens=False)["input_ids"])


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids with no special tokens added. Only the markers of a :class:`Markup` (written by
    :class:`ChatFormat`) become special tokens; every other span, and any plain ``str``, is data."""
    if not isinstance(text, Markup):
        return encode_text(tokenizer, text)
    ids: list[int] = []
    data = ""
    for span, is_marker in text.parts:
        if not is_marker:
            data += span  # adjacent data spans tokenize together, exactly as between two special tokens
            continue
        ids += encode_text(tokenizer, data) + _marker_ids(tokenizer, span)
        data = ""
    return ids + encode_text(tokenizer, data)


def special_ids(tokenizer: Any) -> set[int]:
    """Ids of every special token of ``tokenizer`` (turn markers, end of text, and the other control tokens)."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return {i for i, tok in added.items() if getattr(tok, "special", False)} | set(tokenizer.all_special_ids)
