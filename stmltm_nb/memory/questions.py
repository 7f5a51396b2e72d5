"""The questions of an item, and training questions for context distillation ("self-study").

:class:`ItemQuestions` is one item's record: the questions it is trained on and the held-out probe that checks
it (never trained on); :func:`questions_of` builds the mapping for a list of facts, the way the
:class:`~stmltm_nb.decision.controller.Controller` takes it.

Training questions are each item's shipped templates (if any) plus ``n_self`` questions the model writes itself
by sampling (temperature 0.7, seeded). Held-out paraphrases are never used here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stmltm_nb.memory.facts import Fact
from stmltm_nb.memory.items import STMItem
from stmltm_nb.models import LoadedModel
from stmltm_nb.prompts import CHATML, ChatFormat, encode

SELF_STUDY_PROMPT = "Write one short question whose answer is stated in this sentence:\n{text}"


@dataclass(frozen=True)
class ItemQuestions:
    """One item's questions. ``train``: the questions it is trained on (empty: it cannot be trained on, so it is
    never absorbed); ``probe``: the (question, answer) of the held-out check, never trained on (None: the check
    asks the first training question and looks for the item's own answer). ``train`` is stored as a tuple."""

    train: tuple[str, ...] = ()
    probe: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.train, str):
            raise TypeError(f"train must be a sequence of questions, not one string: {self.train!r}")
        object.__setattr__(self, "train", tuple(self.train))
        if self.probe is not None:
            if len(self.probe) != 2:
                raise ValueError(f"probe must be (question, answer), got {self.probe!r}")
            object.__setattr__(self, "probe", tuple(self.probe))

    @classmethod
    def of_fact(cls, fact: Fact) -> ItemQuestions:
        """A fact's questions: its training templates, and its held-out paraphrase with its answer as the probe."""
        return cls(tuple(fact.train_questions), (fact.heldout_question, fact.answer))

    def check(self, answer: str | None) -> tuple[str | None, str | None]:
        """(question, answer) that checks the item whose own answer is ``answer``: the probe, else the first
        training question with ``answer``; (None, ``answer``) when there is neither."""
        if self.probe is not None:
            return self.probe
        return (self.train[0] if self.train else None), answer


def questions_of(facts: Sequence[Fact]) -> dict[str, ItemQuestions]:
    """The questions of each fact by id (:meth:`ItemQuestions.of_fact`)."""
    return {f.id: ItemQuestions.of_fact(f) for f in facts}


def training_templates(questions: Mapping[str, ItemQuestions]) -> dict[str, tuple[str, ...]]:
    """The training questions by item id (probes left out), as :class:`~stmltm_nb.memory.consolidation.Lesson`
    takes them."""
    return {item_id: q.train for item_id, q in questions.items()}


@dataclass
class Query:
    item_id: str
    question: str
    kind: str  # "template" or "self"


def self_study_questions(lm: LoadedModel, item: STMItem, n: int = 1, seed: int = 0, fmt: ChatFormat = CHATML,
                         max_new_tokens: int = 24) -> list[str]:
    """Questions about ``item`` written by the model itself (sampled at temperature 0.7, seeded)."""
    import torch

    if n <= 0:
        return []
    prompt = fmt.user_turn(SELF_STUDY_PROMPT.format(text=item.text.strip()))
    ids = torch.tensor([encode(lm.tokenizer, prompt)], device=lm.model.device)
    gen = torch.Generator().manual_seed(seed)
    end_id = lm.tokenizer.convert_tokens_to_ids(fmt.end)
    out: list[str] = []
    with torch.no_grad():
        for _ in range(n * 3):  # a few tries to get n usable questions
            from transformers import DynamicCache

            cache = DynamicCache()
            logits = lm.model(input_ids=ids, cache=cache, use_cache=True).logits[0, -1]
            toks: list[int] = []
            for _ in range(max_new_tokens):
                probs = torch.softmax(logits.float() / 0.7, dim=-1)
                t = int(torch.multinomial(probs.cpu(), 1, generator=gen))  # CPU generator: same draws anywhere
                if t in (end_id, lm.tokenizer.eos_token_id):
                    break
                toks.append(t)
                step = torch.tensor([[t]], device=lm.model.device)
                logits = lm.model(input_ids=step, cache=cache, use_cache=True).logits[0, -1]
            q = lm.tokenizer.decode(toks, skip_special_tokens=True).strip().split("\n")[0].strip()
            if q.endswith("?") and 10 <= len(q) <= 200 and q not in out and _on_topic(q, item.text):
                out.append(q)
            if len(out) >= n:
                break
    return out


def _content_words(text: str) -> set[str]:
    import re

    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3} - _STOP


_STOP = {"what", "which", "whose", "where", "when", "that", "this", "with", "from", "there", "their", "called",
         "name", "named", "does", "have", "about", "would", "could", "into", "they", "were", "been"}


def _on_topic(question: str, text: str) -> bool:
    """A self-written question counts only if it shares at least two content words with its item."""
    return len(_content_words(question) & _content_words(text)) >= 2


def build_queries(lm: LoadedModel, items: Sequence[STMItem], templates: dict[str, Sequence[str]], n_self: int = 1,
                  seed: int = 0) -> list[Query]:
    """Training questions: shipped templates per item id plus ``n_self`` self-written questions per item."""
    qs: list[Query] = []
    for i, it in enumerate(items):
        qs += [Query(it.id, q, "template") for q in templates.get(it.id, ())]
        qs += [Query(it.id, q, "self") for q in self_study_questions(lm, it, n_self, seed + i)]
    return qs
