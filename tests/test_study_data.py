"""Study data (``data/study_wordings.json``, ``data/distractor_facts.jsonl``): diverse study wordings disjoint from
every held-out wording, "Tell me about …" rows, and a distractor pool clear of every fact file.

Torch-free: reads the data files and the generators only."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from stmltm_nb.memory.facts import (
    COMMON_WORDS,
    HELDOUT_SPLITS,
    Fact,
    load_facts,
    load_final_facts,
    load_practice_facts,
)
from stmltm_nb.memory.items import STMItem, validate_item
from stmltm_nb.memory.study_data import (
    POOL_WORDS,
    Distractor,
    StudyWordings,
    about_rows,
    check_distractor_pool,
    check_study_wordings,
    distractor_items,
    load_distractor_facts,
    load_study_wordings,
    study_questions,
)
from stmltm_nb.shipped import data_dir

ROOT = Path(__file__).resolve().parent.parent


def _norm(q: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", q.lower()).split())


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("build_study", data_dir() / "build_study.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def shipped():
    return load_facts(contradictions=True)


@pytest.fixture(scope="module")
def practice():
    return load_practice_facts()


@pytest.fixture(scope="module")
def final():
    return load_final_facts(contradictions=True)


@pytest.fixture(scope="module")
def wordings():
    return load_study_wordings()


@pytest.fixture(scope="module")
def pool():
    return load_distractor_facts()


# ----- the files are the generator's -------------------------------------------------------------------------------
def test_committed_files_equal_a_fresh_build(gen):
    study, rows = gen.build_all()
    assert gen.dump_study(study) == (data_dir() / "study_wordings.json").read_text()
    assert gen.dump_rows(rows) == (data_dir() / "distractor_facts.jsonl").read_text()


# ----- study wordings ----------------------------------------------------------------------------------------------
def test_every_shipped_relation_has_eight_wordings_and_the_final_only_relations_none(gen, wordings, shipped, final):
    rels = {f.relation for f in shipped}
    assert set(wordings.relations) == set(wordings.about) == rels == {r[0] for r in gen.bf.RELATIONS}
    assert not set(wordings.relations) & {f.relation for f in final} - rels  # the unseen relations stay unseen
    for rel, ws in wordings.relations.items():
        assert len(ws) >= 8 and len({_norm(w) for w in ws}) == len(ws), rel
        assert all(w.count("{s}") == 1 for w in ws + wordings.about[rel]), rel
        assert sum(w.startswith("Tell me about") for w in wordings.about[rel]) >= 1, rel
    assert wordings.about_default and all(w.count("{s}") == 1 for w in wordings.about_default)
    # varied: fill-in, polite/indirect requests and questions, not one frame
    every = [w for ws in wordings.relations.values() for w in ws]
    assert sum(w.startswith("Fill in the blank") for w in every) >= 16
    assert sum(w.startswith(("Could you", "Do you know", "I ")) for w in every) >= 32


def test_the_first_two_wordings_are_the_facts_training_templates(shipped, practice, wordings):
    for f in shipped + practice:
        assert study_questions(f, 2, wordings) == list(f.train_questions), f.id
        assert all(f.subject in q for q in study_questions(f, None, wordings)), f.id


def test_study_and_about_wordings_are_disjoint_from_every_heldout_wording_of_every_split(shipped, practice, final,
                                                                                          wordings):
    facts = shipped + practice + final
    held = {_norm(w) for f in facts for s in HELDOUT_SPLITS for w in f.heldout_for(s)}
    held |= {_norm(f.heldout_question) for f in facts}
    n = 0
    for f in facts:
        qs = study_questions(f, None, wordings) + [q for q, _ in about_rows(f, None, wordings)]
        assert not {_norm(q) for q in qs} & held, f.id
        n += len(qs)
    assert n > 3000
    check_study_wordings(facts, wordings)  # the loader-side check passes on the shipped data


def test_no_study_template_is_near_a_heldout_template_of_any_relation(gen):
    gen.check_wordings()  # equal, contained either way, or one word away: refused on build
    held = [_norm(w.format(s="Qzx")) for bank in gen.bf.HELDOUT.values() for ws in bank.values() for w in ws]
    for rel, ws in gen.STUDY.items():
        for w in ws + gen.ABOUT[rel]:
            q = _norm(w.format(s="Qzx"))
            assert not [h for h in held if h == q or f" {h} " in f" {q} " or f" {q} " in f" {h} "], w


def test_the_build_refuses_a_study_wording_near_a_heldout_one(gen, monkeypatch):
    for bad in ("Tell me the capital city of {s}.", "Tell me the capital city of {s}, please.",
                "Tell me the main capital city of {s}.", "What is {s}'s currency?"):
        monkeypatch.setitem(gen.STUDY, "capital", gen.STUDY["capital"][:-1] + [bad])
        with pytest.raises(ValueError, match=r"relation capital: study wording .* collides with the '(report|final)'"):
            gen.check_wordings()
    monkeypatch.setitem(gen.STUDY, "capital", gen.STUDY["capital"][:5])
    with pytest.raises(ValueError, match="relation capital: need ≥ 8"):
        gen.check_wordings()


def test_study_questions_are_deterministic_and_fall_back_on_the_training_templates(shipped, final, wordings):
    f = shipped[0]
    every = study_questions(f, None, wordings)
    assert study_questions(f, 3, wordings) == every[:3] and study_questions(f, 0, wordings) == []
    s1 = study_questions(f, None, wordings, seed=1)
    assert s1 == study_questions(f, None, wordings, seed=1) and sorted(s1) == sorted(every) and s1 != every
    assert study_questions(f, 4, wordings, seed=1) == s1[:4]
    assert study_questions(f) == every  # default: the shipped file
    unseen = next(x for x in final if x.relation not in wordings.relations)
    assert study_questions(unseen, 8, wordings) == list(unseen.train_questions)


def test_about_rows_are_answered_by_the_facts_own_sentence(shipped, final, wordings):
    for f in shipped:
        (q, a), = about_rows(f, 1, wordings)
        assert q.startswith("Tell me about") and f.subject in q and a == f.text
    unseen = next(x for x in final if x.relation not in wordings.relations)
    assert about_rows(unseen, None, wordings) == [(w.format(s=unseen.subject), unseen.text)
                                                  for w in wordings.about_default]


# ----- the distractor pool -----------------------------------------------------------------------------------------
def test_pool_size_relations_and_patterns(gen, pool, shipped, final):
    assert len(pool) >= 120 and len({d.id for d in pool}) == len({d.key for d in pool}) == len(pool)
    by_rel = Counter(d.relation for d in pool)
    assert len(by_rel) >= 15 and min(by_rel.values()) >= 6
    fact_relations = {f.relation for f in shipped + final} | {r[0] for r in gen.bf.RELATIONS + gen.bf.NEW_RELATIONS}
    assert not set(by_rel) & fact_relations
    patterns = {r[0]: r[2] for r in gen.DISTRACTOR_RELATIONS}
    for rel in by_rel:
        used = {d.pattern for d in pool if d.relation == rel}
        assert len(used) >= 2, rel
    for d in pool:
        assert d.text == patterns[d.relation][d.pattern].format(s=d.subject, v=d.answer), d.id
        assert d.subject in d.text and d.answer in d.text and d.key == f"{d.relation}:{d.subject}", d.id
    assert len({d.relation for d in pool[:30]}) >= 10  # shuffled: a prefix mixes relations


def _pool_names(d: Distractor) -> set[str]:
    return {w for w in re.findall(r"[A-Za-z]+", f"{d.subject} {d.answer}") if w[0].isupper()} - POOL_WORDS


def _fact_names(f: Fact) -> set[str]:
    return {w.capitalize() for w in re.findall(r"[A-Za-z]+", f"{f.subject} {f.answer}")} - COMMON_WORDS


def test_pool_shares_no_name_with_any_fact_file(pool, shipped, practice, final):
    facts = shipped + practice + final
    names = set().union(*map(_fact_names, facts))
    pool_names = set().union(*map(_pool_names, pool))
    assert len(pool_names) > 200 and not pool_names & names
    assert not {d.subject for d in pool} & {f.subject for f in facts}
    assert not {d.answer for d in pool} & {f.answer for f in facts if not f.answer.isdigit()}
    text_words = {w for f in facts for w in re.findall(r"[A-Za-z]+", f.text)}
    assert not pool_names & text_words
    check_distractor_pool(pool, shipped + practice, also_clear_of=final)  # passes on the shipped data


def test_distractor_items_are_valid_stm_items(pool):
    items = distractor_items()
    assert [i.id for i in items] == [d.id for d in pool]
    for it, d in zip(items, pool):
        validate_item(it)
        assert (it.text, it.answer, it.source, it.key) == (d.text, d.answer, "distractors", d.key)


# ----- bad input: a clear error naming the item, before any teacher pass -------------------------------------------
def test_a_study_wording_equal_to_a_heldout_wording_names_the_fact_and_the_wording(shipped, final, wordings):
    f = next(x for x in shipped if x.relation == "capital")
    bad = {"capital": list(wordings.relations["capital"]) + ["tell me the CAPITAL city of {s}"]}
    with pytest.raises(ValueError, match=rf"fact {f.id}: study wording 'tell me the CAPITAL city of {f.subject}' "
                                         rf"collides with held-out wording 'Tell me the capital city of "
                                         rf"{f.subject}\.' \('report' of fact {f.id}\)"):
        check_study_wordings(shipped, bad)
    x = next(x for x in final if x.relation == "currency")
    with pytest.raises(ValueError, match=rf"fact {x.id}: .*What is {x.subject}'s currency\?\W+ \('final'"):
        check_study_wordings(final, {"currency": ["What is {s}'s currency?"]})
    about = StudyWordings(wordings.relations, {**wordings.about, "capital": ("Tell me the capital city of {s}!",)},
                          wordings.about_default)
    with pytest.raises(ValueError, match=rf"fact {f.id}: study wording 'Tell me the capital city of "):
        check_study_wordings([f], about)
    with pytest.raises(ValueError, match="naming the subject once"):
        check_study_wordings([f], {"capital": ["What is the capital?"]})


def test_a_pool_overlapping_the_consolidated_items_names_the_entry_and_the_item(pool, shipped, final):
    items = shipped[:20]
    f = next(x for x in items if x.answer.isalpha() and x.answer not in COMMON_WORDS)  # an invented-name answer
    same_subject = Distractor("d900", f"horse:{f.subject}", "horse", f.subject, f"{f.subject} rides a horse called "
                              "Plonkvorth.", "Plonkvorth")
    with pytest.raises(ValueError, match=rf"distractor d900 .* shares the name .* with the item being consolidated "
                                         rf"{f.id}"):
        check_distractor_pool(pool[:5] + [same_subject], items)
    same_text = Distractor("d901", "horse:Qwimbly", "horse", "Qwimbly", f.text, "Plonkvorth")
    with pytest.raises(ValueError, match=rf"distractor d901 .* is the text of the item being consolidated {f.id}"):
        check_distractor_pool([same_text], items)
    with pytest.raises(ValueError, match=rf"distractor {f.id} has the id of the item being consolidated"):
        check_distractor_pool([Distractor(f.id, "horse:Qwimbly", "horse", "Qwimbly", "Qwimbly rides Trot.", "Trot")],
                              items)
    # the answer of a consolidated fact named in a distractor's text
    mentions = Distractor("d902", "horse:Qwimbly", "horse", "Qwimbly", f"Qwimbly rides a horse called {f.answer}.",
                          f.answer)
    with pytest.raises(ValueError, match=rf"d902 .* shares the name '{f.answer}' with .* {f.id}"):
        check_distractor_pool([mentions], items)
    inventor = next(x for x in shipped if x.relation == "inventor")  # a lower-case invented name: "mandria engine"
    word = inventor.subject.split()[0]
    named = Distractor("d904", "horse:Qwimbly", "horse", "Qwimbly", f"Qwimbly rides a horse called {word}.", word)
    with pytest.raises(ValueError, match=rf"d904 .* shares the name '{word.capitalize()}' with .* {inventor.id}"):
        check_distractor_pool([named], [inventor])
    # the sealed final split, passed by a caller that has it loaded
    x = final[0]
    near_final = Distractor("d903", f"nickname:{x.subject}", "nickname", x.subject,
                            f"Friends call {x.subject} Qwimblyx.", "Qwimblyx")
    check_distractor_pool([near_final], items)
    with pytest.raises(ValueError, match=rf"d903 .* with the fact to stay clear of {x.id}"):
        check_distractor_pool([near_final], items, also_clear_of=final)
    # a note of yours (an STM item) that names a distractor's subject
    d = pool[0]
    note = STMItem(text=f"Remember to call {d.subject.split()[0]} on Friday.", id="n001")
    with pytest.raises(ValueError, match=rf"distractor {d.id} .* with the item being consolidated n001"):
        check_distractor_pool(pool, [note])
    check_distractor_pool(pool, [STMItem(text="The meeting moved to Thursday at noon.", id="n002")])


def test_bad_files_are_refused_with_the_line(tmp_path, pool):
    p = tmp_path / "study.json"
    p.write_text(json.dumps({"relations": {"capital": ["What is the capital?"]}, "about": {}, "about_default": []}))
    with pytest.raises(ValueError, match=r"study.json, capital: .*naming the subject once"):
        load_study_wordings(p)
    p.write_text(json.dumps({"relations": {}}))
    with pytest.raises(ValueError, match="study.json: bad study wordings file"):
        load_study_wordings(p)
    q = tmp_path / "pool.jsonl"
    row = {k: v for k, v in pool[0].__dict__.items()}
    q.write_text(json.dumps(row) + "\n" + json.dumps({**row, "colour": "red"}) + "\n")
    with pytest.raises(ValueError, match=r"pool.jsonl, line 2: bad distractor"):
        load_distractor_facts(q)


def test_the_module_is_torch_free():
    code = "import sys, stmltm_nb.memory.study_data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_training_wordings_add_study_and_about_questions_after_the_two_templates():
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.memory.study_data import training_wordings

    facts = load_facts()[:5]
    base = training_wordings(facts)
    assert base == {f.id: list(f.train_questions) for f in facts}  # today's recipe
    rich = training_wordings(facts, study=6, about=1)
    for f in facts:
        qs = rich[f.id]
        assert qs[:2] == list(f.train_questions) and len(qs) == len(set(qs)) == 2 + 6 + 1
        assert all(f.subject in q for q in qs)
        held = {q.lower() for ws in f.heldout_questions.values() for q in ws}
        assert not held & {q.lower() for q in qs}
    with pytest.raises(ValueError, match=">= 0"):
        training_wordings(facts, study=-1)


def test_training_wordings_refuse_a_wording_that_is_held_out_naming_the_fact():
    from dataclasses import replace

    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.memory.study_data import load_study_wordings, training_wordings

    f = load_facts()[0]
    w = load_study_wordings()
    leaked = f.heldout_questions["report"][0].replace(f.subject, "{s}")
    bad = replace(w, relations={**w.relations, f.relation: (*w.relations[f.relation], leaked)})
    with pytest.raises(ValueError, match=f.id):
        training_wordings([f], study=8, wordings=bad)
