"""Explicit prompt formatting (ChatML, as SmolLM2 uses), never through ``apply_chat_template``.

SmolLM2's chat template silently injects a default system prompt ("You are a helpful AI assistant named
SmolLM ...") when the conversation has no system turn. Here every token that enters the context is written out:

    <|im_start|>system\\n{header}{item_1}\\n{item_2}\\n...   <- STM prefix (header + items), or a cartridge
    <|im_end|>\\n<|im_start|>user\\n{question}<|im_end|>\\n<|im_start|>assistant\\n   <- query suffix

The system turn is left open while items are appended and closed by the query suffix, so items can be
prefilled one by one onto a live KV cache. A cartridge initialised from the KV of this prefix *is* truncated
STM at step 0.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HEADER = "You are a helpful assistant. Answer the user's question using these notes.\nNotes:\n"


@dataclass(frozen=True)
class ChatFormat:
    """Turn markers of a chat format (defaults: ChatML as used by SmolLM2)."""

    start: str = "<|im_start|>"
    end: str = "<|im_end|>"

    def prefix(self, header: str = DEFAULT_HEADER) -> str:
        """Opening of the system turn that holds the STM notes (left open)."""
        return f"{self.start}system\n{header}"

    @staticmethod
    def item(text: str) -> str:
        """One STM item as it appears in the context: its text and a newline separator."""
        return text.strip() + "\n"

    def query(self, question: str) -> str:
        """Closes the system turn, asks ``question`` and opens the assistant turn."""
        return f"{self.end}\n{self.start}user\n{question.strip()}{self.end}\n{self.start}assistant\n"

    def render(self, items: list[str], question: str, header: str = DEFAULT_HEADER) -> str:
        """The whole context as text, exactly as the model sees it (for display)."""
        return self.prefix(header) + "".join(self.item(t) for t in items) + self.query(question)


CHATML = ChatFormat()


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` with no special tokens added (markers in the text are parsed as special tokens)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
