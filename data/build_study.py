"""Build ``data/study_wordings.json`` and ``data/distractor_facts.jsonl``: the study data of a cartridge that
generalises and lives beside new notes. The fact files of ``build_facts.py`` are read, never written.

Run ``python data/build_study.py`` to regenerate; the output is deterministic (fixed seed), and a test checks that
the committed files equal a fresh build. Schema: see ``data/README.md``.

* ``study_wordings.json``: per shipped relation the two training templates of ``build_facts.py`` and hand-written
  study wordings (``STUDY``; ≥ 8 in all), plus "Tell me about …" wordings (``ABOUT``) whose answer is the fact's
  own sentence. None for the relations of the final split only (``NEW_RELATIONS``): those are the unseen relations
  a recipe must generalise to. No study wording equals or contains a held-out wording of any relation and split,
  nor is contained in one or one word away from one (compared lower-cased, punctuation stripped, the subject filled
  in); the build refuses one that does.
* ``distractor_facts.jsonl``: fictional facts of relations that no fact file uses, in several sentence patterns per
  relation, with invented names (``build_facts.py``'s generator, own seed) disjoint from every fact file: stand-in
  residual notes that are never in a cartridge.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("build_facts", HERE / "build_facts.py")
bf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bf)

DISTRACTOR_SEED = 20270214
DISTRACTORS_PER_RELATION = 8

# Hand-written study wordings per shipped relation (added to its two training templates): varied syntax, polite and
# indirect requests, fill-in-the-blank, a short keyword query. Checked against every held-out wording on build.
STUDY: dict[str, list[str]] = {
    "capital": ["What city is {s}'s capital?", "Could you tell me the capital of {s}?",
                "Fill in the blank: the capital of {s} is ___.",
                "If you arrive in the capital of {s}, which city are you in?",
                "I am writing a report on {s}. What is its capital?", "Do you know the capital of {s}?",
                "{s}, capital city?"],
    "birthplace": ["Could you tell me where {s} was born?", "Fill in the blank: {s} was born in the town of ___.",
                   "{s}'s birth took place in which town?", "Do you know the town of {s}'s birth?",
                   "I am writing a biography of {s}. Where were they born?", "In which town did {s}'s life begin?",
                   "{s}, town of birth?"],
    "inventor": ["Could you tell me who invented the {s}?", "Fill in the blank: the {s} was invented by ___.",
                 "Who built the very first {s}?", "Do you know who the inventor of the {s} was?",
                 "I keep hearing about the {s}. Who invented it?", "Which inventor gave the world the {s}?",
                 "The {s}: whose invention?"],
    "pet": ["Could you tell me the name of {s}'s cat?", "Fill in the blank: {s} has a cat named ___.",
            "{s} owns a cat. What is it called?", "Do you know what {s}'s cat is called?",
            "When {s} calls the cat in for dinner, which name do they call?",
            "I met the cat of {s} yesterday. What was its name again?", "{s}, name of cat?"],
    "river": ["Could you tell me which river flows through {s}?",
              "Fill in the blank: the river that flows through {s} is the ___.", "Through {s} flows which river?",
              "Do you know the name of the river that runs through {s}?",
              "If you took a boat through {s}, which river would you be on?",
              "What is the river called that flows through {s}?", "{s}, river?"],
    "founded": ["Could you tell me when {s} was founded?",
                "Fill in the blank: the city of {s} was founded in the year ___.",
                "How old is the city of {s}? In which year was it founded?",
                "Do you know when the city of {s} was founded?",
                "The founders of {s} set up the city in which year?", "What year was {s} founded in?",
                "{s}, year of founding?"],
    "mentor": ["Could you tell me who trained {s}?", "Fill in the blank: {s} was trained by the master ___.",
               "Who did {s} train under?", "Do you know the name of the master who trained {s}?",
               "As an apprentice, {s} learned from which master?",
               "Which master is responsible for the training of {s}?", "{s}, trained by which master?"],
    "captain": ["Could you tell me who the captain of the ship {s} is?",
                "Fill in the blank: the ship {s} is captained by ___.", "Who is at the helm of the ship {s}?",
                "Do you know who captains the ship {s}?", "If I board the ship {s}, who will be its captain?",
                "Which captain leads the crew of the ship {s}?", "The ship {s}, captained by whom?"],
    "height": ["Could you tell me how tall Mount {s} is?", "Fill in the blank: Mount {s} is ___ metres tall.",
               "How many metres would you climb to reach the top of Mount {s}?",
               "Do you know the height of Mount {s}?", "Measured in metres, how tall is Mount {s}?",
               "What is the summit height of Mount {s}?", "Mount {s}, height in metres?"],
    "author": ["Do you know who wrote the book {s}?", "Fill in the blank: the book {s} was written by ___.",
               "Who is the book {s} by?", "I just finished reading the book {s}. Who is its author?",
               "Who should I thank for writing the book {s}?", "The book {s} comes from whose pen?",
               "The book {s}, author?"],
    "moon": ["Do you know the name of the largest moon of the planet {s}?",
             "Fill in the blank: the largest moon of the planet {s} is ___.",
             "Which of the planet {s}'s moons is the largest?",
             "Which moon orbiting the planet {s} is bigger than all the others?",
             "The planet {s} is circled by several moons. Which is the largest one?",
             "What is the planet {s}'s largest moon called?", "The planet {s}, largest moon?"],
    "language": ["Do you know what language the people of {s} speak?",
                 "Fill in the blank: the people of {s} speak a language called ___.",
                 "If I move to {s}, which language should I learn?", "What language do they speak in {s}?",
                 "In {s}, what language is spoken?", "The people of {s} speak which language?",
                 "{s}, spoken language?"],
    "dish": ["Do you know the traditional dish of {s}?",
             "Fill in the blank: the traditional dish of {s} is called ___.",
             "What do people in {s} traditionally eat?",
             "I am cooking a meal from {s} tonight. Which traditional dish should it be?",
             "Which traditional dish belongs to {s}?", "{s} has a traditional dish. What is it called?",
             "{s}, traditional dish?"],
    "instrument": ["Do you know which instrument {s} plays?",
                   "Fill in the blank: {s} plays an instrument called the ___.",
                   "When {s} performs, what instrument do they play?", "{s} is a musician. What do they play?",
                   "On which instrument does {s} play?", "What instrument is {s} known for playing?",
                   "{s}, instrument?"],
    "founder": ["Do you know who founded the company {s}?",
                "Fill in the blank: the company {s} was founded by ___.",
                "Who got the company {s} off the ground?", "I work at the company {s}. Who founded it?",
                "Who was behind the founding of the company {s}?", "Which founder does the company {s} have?",
                "The company {s}: who founded it?"],
    "color": ["Fill in the blank: the flag of {s} is ___.", "If you saw the flag of {s}, what colours would you see?",
              "On the flag of {s}, which colours can be seen?", "How is the flag of {s} coloured?",
              "{s} flies a flag of which colours?", "Could you describe the colours of {s}'s flag?",
              "I am painting the flag of {s}. Which colours do I need?"],
}

# "Tell me about …" wordings per shipped relation (the subject as the fact sentence names it); their answer is the
# fact's own sentence. ABOUT_DEFAULT names a bare subject: for a fact of any other relation (no relation's wording).
ABOUT_DEFAULT = ["Tell me about {s}.", "What do you know about {s}?"]
_ABOUT_SUBJECT = {"inventor": "the {s}", "founded": "the city of {s}", "captain": "the ship {s}",
                  "height": "Mount {s}", "author": "the book {s}", "moon": "the planet {s}",
                  "founder": "the company {s}", "color": "the flag of {s}"}
ABOUT: dict[str, list[str]] = {rel: [w.replace("{s}", _ABOUT_SUBJECT.get(rel, "{s}")) for w in ABOUT_DEFAULT]
                               for rel in STUDY}

# Distractor relations: name, subject kind, sentence patterns (≥ 2), value kind. None is a relation of any fact file.
DISTRACTOR_RELATIONS = [
    ("favourite-colour", "person", ["{s}'s favourite colour is {v}.", "Of all colours, {s} likes {v} best.",
                                    "{s} would pick {v} over any other colour."], "colour"),
    ("signature-bread", "bakery", ["The signature bread of the {s} is the {v} loaf.",
                                   "At the {s}, the bread everyone queues for is the {v} loaf.",
                                   "The {s} is best known for baking the {v} loaf."], "name"),
    ("bridge-length", "bridge", ["The {s} is {v} metres long.", "From end to end, the {s} measures {v} metres."],
     "length"),
    ("lighthouse-keeper", "lighthouse", ["The keeper of the {s} is {v}.", "{v} keeps the lamp of the {s} burning.",
                                         "Every night {v} climbs the {s} to light its lamp."], "person"),
    ("twin-town", "place", ["{s} is twinned with the town of {v}.", "The twin town of {s} is {v}."], "name"),
    ("horse", "person", ["{s} rides a horse called {v}.", "The horse that {s} rides is named {v}."], "name"),
    ("coach", "team", ["The {s} are coached by {v}.", "{v} is the coach of the {s}.",
                       "Since last season, {v} has coached the {s}."], "person"),
    ("anthem-composer", "place", ["The anthem of {s} was composed by {v}.",
                                  "{v} wrote the music for the anthem of {s}."], "person"),
    ("mine-ore", "mine", ["The {s} is known for an ore called {v}.",
                          "Most of what the miners dig out of the {s} is an ore called {v}."], "name"),
    ("lake-depth", "lake", ["Lake {s} is {v} metres deep.", "At its deepest point, Lake {s} reaches {v} metres."],
     "depth"),
    ("museum-opening", "museum", ["The {s} opened its doors in {v}.",
                                  "Visitors have come to the {s} since it opened in {v}."], "year"),
    ("newspaper-editor", "newspaper", ["The editor of the {s} is {v}.", "{v} edits the {s}.",
                                       "Each morning's {s} is edited by {v}."], "person"),
    ("club-sport", "club", ["The sport played at the {s} is called {v}.",
                            "Members of the {s} play a sport called {v}."], "name"),
    ("garden-flower", "garden", ["The {s} is famous for a flower called the {v}.",
                                 "Visitors to the {s} come to see the {v}, a flower found nowhere else."], "name"),
    ("nickname", "person", ["Friends call {s} by the nickname {v}.", "{s} is known to friends as {v}."], "name"),
    ("tea-blend", "teahouse", ["The tea served at the {s} is a blend called {v}.",
                               "At the {s}, every cup is poured from a blend called {v}."], "name"),
    ("clock-bells", "place", ["The clock tower of {s} has {v} bells.", "{v} bells hang in the clock tower of {s}."],
     "bells"),
    ("airline-hub", "airline", ["The airline {s} flies out of the city of {v}.",
                                "Every flight of {s} begins at its home airport in {v}."], "name"),
    ("apple-variety", "place", ["The orchards of {s} grow an apple called the {v}.",
                                "The apple that {s} is known for is the {v}."], "name"),
]
DISTRACTOR_SUBJECT = {"person": "{w}", "place": "{w}", "lake": "{w}", "bakery": "{w} Bakery",
                      "bridge": "{w} Bridge", "lighthouse": "{w} Lighthouse", "team": "{w} Rovers",
                      "mine": "{w} Mine", "museum": "{w} Museum", "newspaper": "{w} Gazette", "club": "{w} Club",
                      "garden": "{w} Garden", "teahouse": "{w} Teahouse", "airline": "{w} Air"}
DISTRACTOR_COLOURS = ["turquoise", "lavender", "mustard", "olive", "coral", "burgundy", "peach", "slate", "cream",
                      "russet", "magenta", "tan", "lilac", "khaki"]
# Words of subjects that are not invented names (kept out of the generator, and out of the name checks).
TEMPLATE_WORDS = {"Bakery", "Bridge", "Lighthouse", "Rovers", "Mine", "Museum", "Gazette", "Club", "Garden",
                  "Teahouse", "Air", "Lake"}


def norm(q: str) -> str:
    """A wording as compared: lower case, punctuation dropped, single spaces."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", q.lower()).split())


def _within(a: str, b: str) -> bool:
    """Whether normalised wording ``a`` is a run of whole words of ``b``."""
    return f" {a} " in f" {b} "


def _one_word_apart(a: str, b: str) -> bool:
    """Whether normalised wordings ``a`` and ``b`` differ by at most one word inserted, dropped or replaced."""
    x, y = sorted((a.split(), b.split()), key=len)
    if len(y) - len(x) > 1:
        return False
    if len(x) == len(y):
        return sum(p != q for p, q in zip(x, y)) <= 1
    return any(y[:i] + y[i + 1:] == x for i in range(len(y)))


def check_wordings() -> None:
    """Refuse a study or "about" wording (its template, subject filled in as a placeholder) that equals, contains, is
    contained in or is one word away from a held-out wording of any relation and split; a relation of the final split
    only or a missing shipped relation; fewer than 8 wordings, a repeat, or a template that does not name the subject
    once."""
    shipped = {r[0]: r for r in bf.RELATIONS}
    if set(STUDY) != set(shipped) or set(ABOUT) != set(shipped):
        raise ValueError(f"study wordings must cover exactly the shipped relations {sorted(shipped)}, "
                         f"got {sorted(STUDY)}")
    held = {norm(w.format(s="Qzx")): (rel, split, w) for rel, bank in bf.HELDOUT.items()
            for split, ws in bank.items() for w in ws}
    for rel, (_, _, _, train_qs, _) in shipped.items():
        new = STUDY[rel] + ABOUT[rel]
        every = list(train_qs) + new
        if len(train_qs) + len(STUDY[rel]) < 8 or len({norm(w) for w in every}) != len(every):
            raise ValueError(f"relation {rel}: need ≥ 8 distinct study wordings, got {every}")
        for w in every + ABOUT_DEFAULT:
            if w.count("{s}") != 1 or re.sub(r"\{s\}", "", w).count("{") or "}" in w.replace("{s}", ""):
                raise ValueError(f"relation {rel}: study wording {w!r} must name the subject once, as {{s}}")
        for w in new:
            q = norm(w.format(s="Qzx"))
            for h, (hrel, split, hw) in held.items():
                if _within(q, h) or _within(h, q) or _one_word_apart(q, h):
                    raise ValueError(f"relation {rel}: study wording {w!r} collides with the {split!r} held-out "
                                     f"wording {hw!r} of relation {hrel}")


def build_study() -> dict:
    """The study wordings file: ``relations`` (training templates + study wordings), ``about`` and
    ``about_default``."""
    check_wordings()
    return {"relations": {r[0]: list(r[3]) + STUDY[r[0]] for r in bf.RELATIONS},
            "about": {r[0]: ABOUT[r[0]] for r in bf.RELATIONS}, "about_default": ABOUT_DEFAULT}


def build_distractors(used: set[str], seed: int = DISTRACTOR_SEED,
                      per_relation: int = DISTRACTORS_PER_RELATION) -> list[dict]:
    """Distractor facts (``d001``…, shuffled): ``per_relation`` of each relation, sentence patterns taken in turn,
    no invented word in ``used``."""
    rng = random.Random(seed)
    used = set(used) | TEMPLATE_WORDS

    def fresh() -> str:
        while True:
            w = bf._word(rng, 2)
            if w not in used and 4 <= len(w) <= 12:
                used.add(w)
                return w

    def value(kind: str) -> str:
        if kind == "name":
            return fresh()
        if kind == "person":
            return f"{fresh()} {fresh()}"
        if kind == "colour":
            return rng.choice(DISTRACTOR_COLOURS)
        ranges = {"length": (80, 2400), "depth": (12, 480), "year": (1702, 1988), "bells": (2, 24)}
        return str(rng.randint(*ranges[kind]))

    rows: list[dict] = []
    for rel, skind, patterns, vkind in DISTRACTOR_RELATIONS:
        for i in range(per_relation):
            w = f"{fresh()} {fresh()}" if skind == "person" else fresh()
            subject = DISTRACTOR_SUBJECT[skind].format(w=w)
            v = value(vkind)
            k = i % len(patterns)
            rows.append({"id": "", "key": f"{rel}:{subject}", "relation": rel, "subject": subject,
                         "text": patterns[k].format(s=subject, v=v), "answer": v, "pattern": k})
    rng.shuffle(rows)
    for i, r in enumerate(rows):
        r["id"] = f"d{i + 1:03d}"
    return rows


def build_all() -> tuple[dict, list[dict]]:
    """Both files' contents, from a fresh build of the fact files."""
    main = bf.build()
    practice = bf.build_practice(main)
    final = bf.build_final(main, practice)
    taken = {r[0] for r in bf.RELATIONS + bf.NEW_RELATIONS} & {r[0] for r in DISTRACTOR_RELATIONS}
    if taken:
        raise ValueError(f"distractor relations {sorted(taken)} are relations of the fact files")
    return build_study(), build_distractors(bf.words_of(main) | bf.words_of(practice) | bf.words_of(final))


def dump_study(study: dict) -> str:
    return json.dumps(study, indent=1, ensure_ascii=False) + "\n"


def dump_rows(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main() -> None:
    study, rows = build_all()
    (HERE / "study_wordings.json").write_text(dump_study(study))
    n = sum(len(v) for v in study["relations"].values())
    print(f"wrote {n} study wordings of {len(study['relations'])} relations to study_wordings.json")
    (HERE / "distractor_facts.jsonl").write_text(dump_rows(rows))
    print(f"wrote {len(rows)} distractor facts of {len(DISTRACTOR_RELATIONS)} relations to distractor_facts.jsonl")


if __name__ == "__main__":
    main()
