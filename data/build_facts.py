"""Build ``data/facts.jsonl``, ``data/practice_facts.jsonl`` and the sealed ``data/final_facts.jsonl``: fictional
facts the model cannot know, with question templates.

Run ``python data/build_facts.py`` to regenerate; the output is deterministic (fixed seeds), and a test checks
that the committed files equal a fresh build. Schema: see ``data/README.md``.

Every relation has two training templates and a bank of hand-written held-out wordings in three disjoint sets
(``HELDOUT``): ``tune`` (recipe choices), ``report`` (the numbers reported) and ``final`` (asked only of the sealed
final split). The single ``heldout_question`` of ``facts.jsonl`` is the first ``tune`` wording: earlier tuning and
report runs both read it, so it is in no other set.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20261123
PER_RELATION = 13
PRACTICE_SEED = 20261201
PRACTICE_PER_RELATION = 3
FINAL_SEED = 20270105
FINAL_PER_RELATION = 5  # per shipped relation
FINAL_PER_NEW_RELATION = 8  # per relation that no earlier split uses
FINAL_CONTRADICTIONS = 8
SPLITS = ("tune", "report", "final")

ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gl", "kr", "th",
          "sh", "tr", "vel", "quor", "zh"]
VOWELS = ["a", "e", "i", "o", "u", "ae", "ei", "ou", "ia"]
CODAS = ["", "n", "r", "l", "s", "th", "x", "m", "nd", "rk", "v"]


def _word(rng: random.Random, syllables: int) -> str:
    parts = [rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(syllables)]
    return "".join(parts).capitalize()


# Each relation: subject kind, fact text, two training questions, value kind. Its held-out wordings are in HELDOUT.
RELATIONS = [
    ("capital", "place", "The capital of {s} is {v}.",
     ["What is the capital of {s}?", "Which city is the capital of {s}?"], "name"),
    ("birthplace", "person", "{s} was born in the town of {v}.",
     ["Where was {s} born?", "In which town was {s} born?"], "name"),
    ("inventor", "object", "The {s} was invented by {v}.",
     ["Who invented the {s}?", "Who is the inventor of the {s}?"], "person"),
    ("pet", "person", "{s} has a cat named {v}.",
     ["What is the name of {s}'s cat?", "What is {s}'s cat called?"], "name"),
    ("river", "place", "The river that flows through {s} is the {v}.",
     ["Which river flows through {s}?", "What river runs through {s}?"], "name"),
    ("founded", "place", "The city of {s} was founded in the year {v}.",
     ["In which year was {s} founded?", "When was the city of {s} founded?"], "year"),
    ("mentor", "person", "{s} was trained by the master {v}.",
     ["Who trained {s}?", "Who was the master that trained {s}?"], "person"),
    ("captain", "ship", "The ship {s} is captained by {v}.",
     ["Who is the captain of the ship {s}?", "Who captains the ship {s}?"], "person"),
    ("height", "mountain", "Mount {s} is {v} metres tall.",
     ["How tall is Mount {s}?", "What is the height of Mount {s} in metres?"], "height"),
    ("author", "book", "The book {s} was written by {v}.",
     ["Who wrote the book {s}?", "Who is the author of the book {s}?"], "person"),
    ("moon", "planet", "The largest moon of the planet {s} is {v}.",
     ["What is the largest moon of the planet {s}?", "Which moon is the largest one of the planet {s}?"], "name"),
    ("language", "place", "The people of {s} speak a language called {v}.",
     ["What language do the people of {s} speak?", "Which language is spoken in {s}?"], "name"),
    ("dish", "place", "The traditional dish of {s} is called {v}.",
     ["What is the traditional dish of {s}?", "Which dish is traditional in {s}?"], "name"),
    ("instrument", "person", "{s} plays an instrument called the {v}.",
     ["Which instrument does {s} play?", "What instrument does {s} play?"], "name"),
    ("founder", "company", "The company {s} was founded by {v}.",
     ["Who founded the company {s}?", "Who is the founder of the company {s}?"], "person"),
    ("color", "flag", "The flag of {s} is {v}.",
     ["What colour is the flag of {s}?", "Which colour is the flag of {s}?"], "color"),
]

# Relations that no training, practice, tuning or report fact uses: only the sealed final split has them.
NEW_RELATIONS = [
    ("currency", "place", "The currency of {s} is the {v}.",
     ["What is the currency of {s}?", "Which currency is used in {s}?"], "name"),
    ("mascot", "school", "The mascot of {s} is a fox named {v}.",
     ["What is the mascot of {s} called?", "What is the name of the mascot of {s}?"], "name"),
    ("architect", "building", "The {s} was designed by the architect {v}.",
     ["Who designed the {s}?", "Who was the architect of the {s}?"], "person"),
    ("population", "place", "The town of {s} has {v} inhabitants.",
     ["How many inhabitants does {s} have?", "What is the population of the town of {s}?"], "population"),
    ("spouse", "person", "{s} is married to {v}.",
     ["Who is {s} married to?", "Who is the spouse of {s}?"], "person"),
    ("festival-month", "place", "The spring festival of {s} is held in the month of {v}.",
     ["In which month is the spring festival of {s} held?", "When is the spring festival of {s} held?"], "name"),
]

# Held-out wordings, written by hand: per relation three disjoint sets, none equal to a training template. The first
# ``tune`` wording of a shipped relation is the ``heldout_question`` that earlier tuning and report runs both read.
HELDOUT: dict[str, dict[str, list[str]]] = {
    "capital": {
        "tune": ["Name the city where the government of {s} is seated.",
                 "Which city serves as the seat of government in {s}?",
                 "What do the people of {s} call their capital city?"],
        "report": ["Tell me the capital city of {s}.",
                   "{s} is governed from which city?",
                   "In which city does {s} have its capital?"],
        "final": ["Which city is home to the government of {s}?",
                  "What is the name of the capital city of {s}?",
                  "The capital of {s} is which city?"],
    },
    "birthplace": {
        "tune": ["What is the name of the town that is {s}'s place of birth?",
                 "Which town is the birthplace of {s}?",
                 "Name the town where {s} came into the world."],
        "report": ["Tell me the town where {s} was born.",
                   "{s} was born in which town?",
                   "What town does {s} come from by birth?"],
        "final": ["Name the birthplace of {s}.",
                  "In what town did {s} first see the light of day?",
                  "What town was {s} born in?"],
    },
    "inventor": {
        "tune": ["Which person first came up with the {s}?",
                 "Who created the {s}?",
                 "Name the person behind the invention of the {s}."],
        "report": ["The {s} was invented by whom?",
                   "Who should be credited with inventing the {s}?",
                   "Whose invention is the {s}?"],
        "final": ["Who devised the {s}?",
                  "Name the inventor of the {s}.",
                  "Which person do we owe the {s} to?"],
    },
    "pet": {
        "tune": ["By what name does the cat owned by {s} go?",
                 "What did {s} name their cat?",
                 "Name the cat that belongs to {s}."],
        "report": ["{s} has a cat; what is its name?",
                   "What name does {s}'s cat answer to?",
                   "Tell me the name of the cat that {s} keeps."],
        "final": ["What is the name of the cat owned by {s}?",
                  "What do people call {s}'s cat?",
                  "{s}'s cat is named what?"],
    },
    "river": {
        "tune": ["Name the river whose waters pass through {s}.",
                 "What is the name of the river in {s}?",
                 "Which river passes through {s}?"],
        "report": ["Name the waterway that crosses {s}.",
                   "Tell me the river that flows through {s}.",
                   "{s} lies on which river?"],
        "final": ["What river can you see flowing through {s}?",
                  "Which river's waters run through {s}?",
                  "The river of {s} is called what?"],
    },
    "founded": {
        "tune": ["What year marks the founding of {s}?",
                 "In what year did the city of {s} come into being?",
                 "Which year was the city of {s} established in?"],
        "report": ["Tell me the year in which {s} was founded.",
                   "The city of {s} was founded in what year?",
                   "What is the founding year of {s}?"],
        "final": ["In which year was the city of {s} established?",
                  "In what year did {s} begin as a city?",
                  "Give the year the city of {s} was founded."],
    },
    "mentor": {
        "tune": ["Under which teacher did {s} learn the craft?",
                 "Who was the teacher of {s}?",
                 "Name the master who taught {s}."],
        "report": ["Which master gave {s} their training?",
                   "{s} was trained by whom?",
                   "Who was {s}'s mentor?"],
        "final": ["Who taught {s} the craft?",
                  "Name the master under whom {s} trained.",
                  "Which master was {s} an apprentice of?"],
    },
    "captain": {
        "tune": ["Which sailor commands the vessel {s}?",
                 "Who is in command of the ship {s}?",
                 "Name the captain of the ship {s}."],
        "report": ["The ship {s} sails under which captain?",
                   "Who commands the ship {s}?",
                   "Which person is the captain aboard the ship {s}?"],
        "final": ["Who is the skipper of the ship {s}?",
                  "Tell me who captains the vessel {s}.",
                  "Whose command is the ship {s} under?"],
    },
    "height": {
        "tune": ["How many metres does Mount {s} rise?",
                 "How high is Mount {s}?",
                 "What is the elevation of Mount {s}, in metres?"],
        "report": ["Mount {s} is how many metres tall?",
                   "Tell me the height of Mount {s}.",
                   "How high does Mount {s} reach, in metres?"],
        "final": ["What height does Mount {s} reach?",
                  "How many metres high is Mount {s}?",
                  "Give the height of Mount {s} in metres."],
    },
    "author": {
        "tune": ["Which writer produced the book {s}?",
                 "Whose book is {s}?",
                 "Name the author of the book {s}."],
        "report": ["The book {s} was written by whom?",
                   "Who is the writer of the book {s}?",
                   "Which author penned the book {s}?"],
        "final": ["Who composed the book {s}?",
                  "Tell me who wrote the book {s}.",
                  "By whom was the book {s} written?"],
    },
    "moon": {
        "tune": ["Name the biggest satellite that orbits the planet {s}.",
                 "Which is the biggest moon of the planet {s}?",
                 "What is the name of the planet {s}'s largest moon?"],
        "report": ["Which moon of the planet {s} is the largest?",
                   "Tell me the largest moon orbiting the planet {s}.",
                   "Of all the moons of the planet {s}, which is the biggest?"],
        "final": ["What is the biggest moon circling the planet {s}?",
                  "Name the largest moon of the planet {s}.",
                  "The planet {s} has which moon as its largest?"],
    },
    "language": {
        "tune": ["In {s}, people talk to each other in which tongue?",
                 "What is the language of {s}?",
                 "Name the language spoken by the people of {s}."],
        "report": ["Which tongue do the people of {s} speak?",
                   "What language is used in {s}?",
                   "Tell me the language that people in {s} speak."],
        "final": ["What do the people of {s} call their language?",
                  "In which language do people in {s} converse?",
                  "Which language would you hear in {s}?"],
    },
    "dish": {
        "tune": ["If you visit {s}, which classic local meal should you try?",
                 "Name the traditional dish of {s}.",
                 "Which dish is {s} traditionally known for?"],
        "report": ["What is the classic dish of {s} called?",
                   "Tell me the traditional food of {s}.",
                   "What traditional meal comes from {s}?"],
        "final": ["Which dish do people in {s} traditionally cook?",
                  "What is the name of the traditional dish of {s}?",
                  "What is {s}'s traditional dish?"],
    },
    "instrument": {
        "tune": ["What is the name of the instrument that {s} performs on?",
                 "Name the instrument played by {s}.",
                 "Which instrument is played by {s}?"],
        "report": ["Tell me the instrument that {s} plays.",
                   "{s} is a player of which instrument?",
                   "What musical instrument does {s} perform on?"],
        "final": ["Which instrument can {s} be heard playing?",
                  "What is the instrument of {s}?",
                  "Name the musical instrument that {s} plays."],
    },
    "founder": {
        "tune": ["Which entrepreneur started the company {s}?",
                 "Who set up the company {s}?",
                 "Name the founder of the company {s}."],
        "report": ["The company {s} was founded by whom?",
                   "Who established the company {s}?",
                   "Tell me who started the company {s}."],
        "final": ["Who created the company {s}?",
                  "Which person founded the company {s}?",
                  "By whom was the company {s} set up?"],
    },
    "color": {
        "tune": ["Describe the colour of the banner that represents {s}.",
                 "What colours are on the flag of {s}?",
                 "Name the colours of the flag of {s}."],
        "report": ["Which colours does the flag of {s} show?",
                   "Tell me the colours of the flag of {s}.",
                   "What are the colours of {s}'s flag?"],
        "final": ["What colours make up the flag of {s}?",
                  "The flag of {s} is which colours?",
                  "In what colours is the flag of {s}?"],
    },
    # -- relations of the final split only (their tune and report wordings are written but never asked) --
    "currency": {
        "tune": ["What money do people use in {s}?",
                 "Name the currency of {s}.",
                 "What is the official money of {s} called?"],
        "report": ["Which currency do people pay with in {s}?",
                   "Tell me the currency used in {s}.",
                   "In {s}, what is the money called?"],
        "final": ["What is {s}'s currency?",
                  "What currency would you need to shop in {s}?",
                  "Which money is legal tender in {s}?"],
    },
    "mascot": {
        "tune": ["What is the fox that serves as the mascot of {s} named?",
                 "Name the mascot of {s}.",
                 "Which fox is the mascot of {s}?"],
        "report": ["What name does the mascot of {s} have?",
                   "Tell me the name of the fox that is the mascot of {s}.",
                   "What is {s}'s mascot called?"],
        "final": ["What is the mascot fox of {s} called?",
                  "By what name is the mascot of {s} known?",
                  "Which name does the fox mascot of {s} go by?"],
    },
    "architect": {
        "tune": ["Which architect drew up the plans for the {s}?",
                 "Name the architect of the {s}.",
                 "Whose design is the {s}?"],
        "report": ["The {s} was designed by whom?",
                   "Tell me who designed the {s}.",
                   "Which architect is behind the {s}?"],
        "final": ["Who is the architect behind the design of the {s}?",
                  "Which architect created the {s}?",
                  "By whom was the {s} designed?"],
    },
    "population": {
        "tune": ["How many people live in {s}?",
                 "What is the number of inhabitants of {s}?",
                 "How large is the population of {s}?"],
        "report": ["Tell me how many inhabitants the town of {s} has.",
                   "How many residents does the town of {s} have?",
                   "What population does {s} have?"],
        "final": ["How many people call the town of {s} home?",
                  "Give the number of people living in {s}.",
                  "The town of {s} is home to how many inhabitants?"],
    },
    "spouse": {
        "tune": ["Who is {s}'s husband or wife?",
                 "Name the spouse of {s}.",
                 "To whom is {s} married?"],
        "report": ["Who did {s} marry?",
                   "Tell me who {s} is married to.",
                   "Which person is married to {s}?"],
        "final": ["Who is {s}'s partner in marriage?",
                  "Name the person that {s} is married to.",
                  "Whom has {s} married?"],
    },
    "festival-month": {
        "tune": ["During which month does {s} hold its spring festival?",
                 "Name the month of the spring festival of {s}.",
                 "What month is the spring festival of {s} in?"],
        "report": ["Tell me the month in which {s} celebrates its spring festival.",
                   "Which month does the spring festival of {s} take place in?",
                   "In what month is the spring festival of {s} celebrated?"],
        "final": ["The spring festival of {s} falls in which month?",
                  "What is the month of {s}'s spring festival?",
                  "In which month do people in {s} celebrate the spring festival?"],
    },
}

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
    "school": lambda w: w + " Academy",
    "building": lambda w: w + " Tower",
}


def bank(rel: str, subject: str) -> dict[str, list[str]]:
    """The held-out wordings of relation ``rel`` about ``subject``: ``{"tune": [...], "report": [...], "final": [...]}``."""
    return {split: [q.format(s=subject) for q in HELDOUT[rel][split]] for split in SPLITS}


def build(seed: int = SEED, per_relation: int | dict[str, int] = PER_RELATION, n_contradictions: int = 8,
          used: set[str] | None = None, prefix: str = "f", relations: list[tuple] | None = None,
          home: str = "tune", contra_prefix: str = "c") -> list[dict]:
    """Facts (``per_relation`` per relation, or ``per_relation[rel]``; shuffled) + ``n_contradictions``
    contradictions; no invented word in ``used`` is generated (so a second set can be disjoint from the first).
    Each fact carries its relation's held-out bank; its single ``heldout_question`` is the first wording of the
    ``home`` set (``tune`` for the shipped and practice facts, ``final`` for the sealed final split). The bank
    draws nothing from the random stream, so names and values depend only on the seed and the counts."""
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
        if kind == "population":
            return str(rng.randint(2100, 98000))
        raise ValueError(kind)

    facts: list[dict] = []
    relations = RELATIONS if relations is None else relations
    for rel, skind, text, train_qs, vkind in relations:
        for _ in range(per_relation if isinstance(per_relation, int) else per_relation[rel]):
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
                "heldout_question": HELDOUT[rel][home][0].format(s=subject),
                "heldout_questions": bank(rel, subject),
                "supersedes": None,
            })
    # Interleave relations so that any prefix of the list mixes topics (streams read facts in order).
    rng.shuffle(facts)
    for i, f in enumerate(facts):
        f["id"] = f"{prefix}{i + 1:03d}"
    # Deliberate contradictions: a later fact with the same key and a new value.
    rel_templates = {r[0]: r for r in relations}
    contra: list[dict] = []
    for f in rng.sample(facts, n_contradictions) if n_contradictions else []:
        rel = rel_templates[f["relation"]]
        v = value(rel[4])
        while v == f["answer"]:
            v = value(rel[4])
        contra.append({**f, "id": f"{contra_prefix}{len(contra) + 1:03d}", "text": rel[2].format(s=f["subject"], v=v),
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


def build_final(main: list[dict], practice: list[dict]) -> list[dict]:
    """The sealed final split (``x001``…, contradictions ``xc001``…): ``FINAL_PER_RELATION`` facts of each shipped
    relation and ``FINAL_PER_NEW_RELATION`` of each relation in ``NEW_RELATIONS`` (which no earlier split uses),
    invented names disjoint from ``main``'s and ``practice``'s, asked with the ``final`` wordings. No run reads
    it until the recipe is frozen at the end of the memory work."""
    counts = {r[0]: FINAL_PER_RELATION for r in RELATIONS} | {r[0]: FINAL_PER_NEW_RELATION for r in NEW_RELATIONS}
    return build(FINAL_SEED, counts, FINAL_CONTRADICTIONS, used=words_of(main) | words_of(practice), prefix="x",
                 relations=RELATIONS + NEW_RELATIONS, home="final", contra_prefix="xc")


def _write(name: str, rows: list[dict]) -> None:
    Path(__file__).with_name(name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {len(rows)} facts to {name}")


def main() -> None:
    rows = build()
    _write("facts.jsonl", rows)
    practice = build_practice(rows)
    _write("practice_facts.jsonl", practice)
    _write("final_facts.jsonl", build_final(rows, practice))


if __name__ == "__main__":
    main()
