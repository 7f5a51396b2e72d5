"""Build ``data/facts.jsonl``: fictional facts the model cannot know, with question templates.

Run ``python data/build_facts.py`` to regenerate; the output is deterministic (fixed seed), and a test checks
that the committed file equals a fresh build. Schema: see ``data/README.md``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20261123
PER_RELATION = 13
PRACTICE_SEED = 20261201
PRACTICE_PER_RELATION = 3

ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gl", "kr", "th",
          "sh", "tr", "vel", "quor", "zh"]
VOWELS = ["a", "e", "i", "o", "u", "ae", "ei", "ou", "ia"]
CODAS = ["", "n", "r", "l", "s", "th", "x", "m", "nd", "rk", "v"]


def _word(rng: random.Random, syllables: int) -> str:
    parts = [rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(syllables)]
    return "".join(parts).capitalize()


# Each relation: subject kind, fact text, two training questions, one held-out paraphrase, value kind.
RELATIONS = [
    ("capital", "place", "The capital of {s} is {v}.",
     ["What is the capital of {s}?", "Which city is the capital of {s}?"],
     "Name the city where the government of {s} is seated.", "name"),
    ("birthplace", "person", "{s} was born in the town of {v}.",
     ["Where was {s} born?", "In which town was {s} born?"],
     "What is the name of the town that is {s}'s place of birth?", "name"),
    ("inventor", "object", "The {s} was invented by {v}.",
     ["Who invented the {s}?", "Who is the inventor of the {s}?"],
     "Which person first came up with the {s}?", "person"),
    ("pet", "person", "{s} has a cat named {v}.",
     ["What is the name of {s}'s cat?", "What is {s}'s cat called?"],
     "By what name does the cat owned by {s} go?", "name"),
    ("river", "place", "The river that flows through {s} is the {v}.",
     ["Which river flows through {s}?", "What river runs through {s}?"],
     "Name the river whose waters pass through {s}.", "name"),
    ("founded", "place", "The city of {s} was founded in the year {v}.",
     ["In which year was {s} founded?", "When was the city of {s} founded?"],
     "What year marks the founding of {s}?", "year"),
    ("mentor", "person", "{s} was trained by the master {v}.",
     ["Who trained {s}?", "Who was the master that trained {s}?"],
     "Under which teacher did {s} learn the craft?", "person"),
    ("captain", "ship", "The ship {s} is captained by {v}.",
     ["Who is the captain of the ship {s}?", "Who captains the ship {s}?"],
     "Which sailor commands the vessel {s}?", "person"),
    ("height", "mountain", "Mount {s} is {v} metres tall.",
     ["How tall is Mount {s}?", "What is the height of Mount {s} in metres?"],
     "How many metres does Mount {s} rise?", "height"),
    ("author", "book", "The book {s} was written by {v}.",
     ["Who wrote the book {s}?", "Who is the author of the book {s}?"],
     "Which writer produced the book {s}?", "person"),
    ("moon", "planet", "The largest moon of the planet {s} is {v}.",
     ["What is the largest moon of the planet {s}?", "Which moon is the largest one of the planet {s}?"],
     "Name the biggest satellite that orbits the planet {s}.", "name"),
    ("language", "place", "The people of {s} speak a language called {v}.",
     ["What language do the people of {s} speak?", "Which language is spoken in {s}?"],
     "In {s}, people talk to each other in which tongue?", "name"),
    ("dish", "place", "The traditional dish of {s} is called {v}.",
     ["What is the traditional dish of {s}?", "Which dish is traditional in {s}?"],
     "If you visit {s}, which classic local meal should you try?", "name"),
    ("instrument", "person", "{s} plays an instrument called the {v}.",
     ["Which instrument does {s} play?", "What instrument does {s} play?"],
     "What is the name of the instrument that {s} performs on?", "name"),
    ("founder", "company", "The company {s} was founded by {v}.",
     ["Who founded the company {s}?", "Who is the founder of the company {s}?"],
     "Which entrepreneur started the company {s}?", "person"),
    ("color", "flag", "The flag of {s} is {v}.",
     ["What colour is the flag of {s}?", "Which colour is the flag of {s}?"],
     "Describe the colour of the banner that represents {s}.", "color"),
]

COLORS = ["crimson and gold", "teal and silver", "violet and white", "amber and black", "green and copper",
          "navy and orange", "scarlet and grey", "indigo and lime", "ochre and blue", "rose and charcoal",
          "saffron and jade", "maroon and ivory", "cobalt and yellow", "plum and bronze", "mint and purple"]
SUBJECT_STYLE = {
    "place": lambda w: w,
    "person": lambda w: w,  # replaced by full names below
    "object": lambda w: w.lower() + " engine",
    "ship": lambda w: w,
    "mountain": lambda w: w,
    "book": lambda w: f"'The {w} Chronicle'",
    "planet": lambda w: w,
    "company": lambda w: w + " Works",
    "flag": lambda w: w,
}


def build(seed: int = SEED, per_relation: int = PER_RELATION, n_contradictions: int = 8,
          used: set[str] | None = None, prefix: str = "f") -> list[dict]:
    """Facts (``per_relation`` per relation, shuffled) + ``n_contradictions`` contradictions; no invented word
    in ``used`` is generated (so a second set can be disjoint from the first)."""
    rng = random.Random(seed)
    used = set() if used is None else set(used)

    def fresh(syllables: int) -> str:
        while True:
            w = _word(rng, syllables)
            if w not in used and 4 <= len(w) <= 12:
                used.add(w)
                return w

    def person() -> str:
        return f"{fresh(2)} {fresh(2)}"

    def value(kind: str) -> str:
        if kind == "name":
            return fresh(2)
        if kind == "person":
            return person()
        if kind == "year":
            return str(rng.randint(1041, 1899))
        if kind == "height":
            return str(rng.randint(1200, 8400))
        if kind == "color":
            return rng.choice(COLORS)
        raise ValueError(kind)

    facts: list[dict] = []
    for rel, skind, text, train_qs, heldout_q, vkind in RELATIONS:
        for _ in range(per_relation):
            subject = person() if skind == "person" else SUBJECT_STYLE[skind](fresh(2))
            v = value(vkind)
            facts.append({
                "id": f"f{len(facts) + 1:03d}",
                "key": f"{rel}:{subject}",
                "relation": rel,
                "subject": subject,
                "text": text.format(s=subject, v=v),
                "answer": v,
                "train_questions": [q.format(s=subject) for q in train_qs],
                "heldout_question": heldout_q.format(s=subject),
                "supersedes": None,
            })
    # Interleave relations so that any prefix of the list mixes topics (streams read facts in order).
    rng.shuffle(facts)
    for i, f in enumerate(facts):
        f["id"] = f"{prefix}{i + 1:03d}"
    # Deliberate contradictions: a later fact with the same key and a new value.
    rel_templates = {r[0]: r for r in RELATIONS}
    contra: list[dict] = []
    for f in rng.sample(facts, n_contradictions) if n_contradictions else []:
        rel = rel_templates[f["relation"]]
        v = value(rel[5])
        while v == f["answer"]:
            v = value(rel[5])
        contra.append({**f, "id": f"c{len(contra) + 1:03d}", "text": rel[2].format(s=f["subject"], v=v),
                       "answer": v, "supersedes": f["id"]})
    return facts + contra


def words_of(facts: list[dict]) -> set[str]:
    """Every capitalised word of the facts' subjects and answers (the invented names)."""
    return {w.strip("'.,").capitalize() for f in facts for part in (f["subject"], f["answer"])
            for w in part.split() if w[:1].isalpha()}


def build_practice(main: list[dict]) -> list[dict]:
    """Practice facts for residual rows (``p001``…): same relations and templates, invented names disjoint from
    ``main``'s, never consolidated, never evaluated; the student learns from them to read residual STM."""
    return build(PRACTICE_SEED, PRACTICE_PER_RELATION, 0, used=words_of(main), prefix="p")


def _write(name: str, rows: list[dict]) -> None:
    Path(__file__).with_name(name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {len(rows)} facts to {name}")


def main() -> None:
    rows = build()
    _write("facts.jsonl", rows)
    _write("practice_facts.jsonl", build_practice(rows))


if __name__ == "__main__":
    main()
