"""The question bank (held-out wordings in three disjoint sets per relation) and the sealed final split.

Torch-free: reads the data files and the generator only."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from stmltm_nb.memory.facts import (
    HELDOUT_SPLITS,
    Fact,
    invented_names,
    load_facts,
    load_final_facts,
    load_practice_facts,
)
from stmltm_nb.metrics.recall import questions_for
from stmltm_nb.shipped import data_dir

ROOT = Path(__file__).resolve().parent.parent


def _norm(q: str) -> str:
    return " ".join(q.lower().split()).rstrip("?.! ")


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("build_facts", data_dir() / "build_facts.py")
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


# ----- the bank ----------------------------------------------------------------------------------------------------
def test_every_relation_has_nine_wordings_in_three_disjoint_sets_none_a_training_template(gen):
    relations = gen.RELATIONS + gen.NEW_RELATIONS
    assert set(gen.HELDOUT) == {r[0] for r in relations}
    for rel, _skind, _text, train_qs, _vkind in relations:
        bank = gen.HELDOUT[rel]
        assert tuple(bank) == HELDOUT_SPLITS, rel
        assert all(len(bank[s]) >= 3 for s in HELDOUT_SPLITS), rel
        wordings = [_norm(q) for s in HELDOUT_SPLITS for q in bank[s]]
        assert len(wordings) >= 9 and len(set(wordings)) == len(wordings), rel  # disjoint sets, no repeats
        assert not set(wordings) & {_norm(q) for q in train_qs}, rel
        assert all(q.count("{s}") == 1 for s in HELDOUT_SPLITS for q in bank[s]), rel  # each names the subject


def test_loaded_facts_carry_the_bank_and_the_old_wording_is_a_tuning_one(shipped, practice, final):
    for f in shipped + practice + final:
        assert set(f.heldout_questions) == set(HELDOUT_SPLITS), f.id
        sets = [set(map(_norm, f.heldout_for(s))) for s in HELDOUT_SPLITS]
        assert all(len(s) >= 3 for s in sets), f.id
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2]), f.id
        assert not set().union(*sets) & set(map(_norm, f.train_questions)), f.id
        assert all(f.subject in q for s in HELDOUT_SPLITS for q in f.heldout_for(s)), f.id
    for f in shipped + practice:  # read by earlier tuning and report runs: a tuning wording only
        assert f.heldout_question == f.heldout_for("tune")[0]
        assert f.heldout_question not in f.heldout_for("report") + f.heldout_for("final")
    for f in final:  # an old caller asking the single wording of a final fact asks a final wording
        assert f.heldout_question == f.heldout_for("final")[0]


def test_questions_for_with_and_without_a_split(shipped):
    f = shipped[0]
    assert questions_for(f, "heldout") == [f.heldout_question]  # unchanged for existing callers
    assert questions_for(f, "train") == list(f.train_questions)
    assert questions_for(f, "train", split="report") == list(f.train_questions)
    for s in HELDOUT_SPLITS:
        assert questions_for(f, "heldout", split=s) == list(f.heldout_for(s)) == list(f.heldout_questions[s])
    with pytest.raises(ValueError, match="'test'"):
        questions_for(f, "heldout", split="test")
    with pytest.raises(ValueError, match="'test'"):
        f.heldout_for("test")


def test_a_fact_without_a_bank_falls_back_to_its_single_heldout_question():
    note = Fact(id="n1", key="note:n1", relation="note", subject="the meeting", text="The meeting is on Thursday.",
                answer="Thursday", train_questions=("When is the meeting?",),
                heldout_question="On which day do we meet?", source="notes")
    assert note.heldout_questions == {}
    assert all(note.heldout_for(s) == ("On which day do we meet?",) for s in HELDOUT_SPLITS)
    assert questions_for(note, "heldout", split="report") == ["On which day do we meet?"]
    assert hash(note) == hash(Fact(**note.__dict__))  # still hashable with the bank field


# ----- the final split ---------------------------------------------------------------------------------------------
def test_final_split_is_new_large_and_a_third_from_relations_no_other_split_uses(shipped, practice, final):
    base = [f for f in final if f.supersedes is None]
    assert len(base) >= 112
    assert all(re.fullmatch(r"x\d{3}", f.id) for f in base)
    assert all(re.fullmatch(r"xc\d{3}", f.id) for f in final if f.supersedes)
    assert len({f.id for f in final}) == len(final) and len({f.key for f in base}) == len(base)
    earlier = shipped + practice
    old_words = set().union(*map(invented_names, earlier))
    new_words = set().union(*map(invented_names, final))
    assert not old_words & new_words
    assert not {f.subject for f in final} & {f.subject for f in earlier}
    def named(facts):  # answers that are invented names (not numbers, not colours)
        return {f.answer for f in facts if invented_names(Fact(**{**f.__dict__, "subject": ""}))}

    assert not named(final) & named(earlier) and len(named(final)) > 80
    new_relations = {f.relation for f in base} - {f.relation for f in earlier}
    assert len(new_relations) >= 4
    assert sum(f.relation in new_relations for f in base) * 3 >= len(base)
    assert all(f.answer in f.text for f in final)


def test_load_facts_never_returns_the_final_split(shipped, final):
    final_ids, final_subjects = {f.id for f in final}, {f.subject for f in final}
    for facts in (load_facts(), shipped, load_practice_facts()):
        assert not {f.id for f in facts} & final_ids
        assert not {f.subject for f in facts} & final_subjects
    with pytest.raises(ValueError, match="sealed"):
        load_facts(data_dir() / "final_facts.jsonl")
    with pytest.raises(ValueError, match="'tune'"):
        load_facts(split="tune")
    assert [f.id for f in load_facts(split="final")] == [f.id for f in final if f.supersedes is None]


def test_only_the_loader_and_the_cli_name_the_final_file():
    allowed = {"stmltm_nb/memory/facts.py", "stmltm_nb/apps/measure_job.py", "stmltm_nb/apps/cli.py"}
    found = []
    for top in ("stmltm_nb", "benchmarks", "notebooks", "tools"):
        for p in sorted((ROOT / top).rglob("*")):
            if not p.is_file() or "__pycache__" in p.parts or p.suffix in (".png", ".pt", ".safetensors"):
                continue
            text = p.read_text(encoding="utf-8", errors="ignore")
            rel = p.relative_to(ROOT).as_posix()
            if ("final_facts" in text or re.search(r"load_facts\([^)]*['\"]final['\"]", text)) and rel not in allowed:
                found.append(rel)
    assert not found, f"only an explicit --split final may read the sealed final split; named in {found}"


# ----- the files are the generator's -------------------------------------------------------------------------------
def test_committed_files_equal_a_fresh_build(gen):
    def dump(rows):
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    main = gen.build()
    practice = gen.build_practice(main)
    assert dump(main) == (data_dir() / "facts.jsonl").read_text()
    assert dump(practice) == (data_dir() / "practice_facts.jsonl").read_text()
    assert dump(gen.build_final(main, practice)) == (data_dir() / "final_facts.jsonl").read_text()


def test_the_bank_draws_nothing_from_the_random_stream(gen):
    """Names, values, ids and training questions do not depend on the held-out wordings."""
    main = gen.build()
    saved = gen.HELDOUT
    try:
        gen.HELDOUT = {r: {s: [w + " (edited)" for w in ws] for s, ws in b.items()} for r, b in saved.items()}
        again = gen.build()
    finally:
        gen.HELDOUT = saved
    strip = ("heldout_question", "heldout_questions")
    assert [{k: v for k, v in r.items() if k not in strip} for r in again] == \
        [{k: v for k, v in r.items() if k not in strip} for r in main]
    assert Counter(r["relation"] for r in main if not r["supersedes"]) == {r[0]: 13 for r in gen.RELATIONS}


# ----- bad input: a clear error naming the fact and the wording or name, before any model loads ----------------------
def _row(fid="t001", subject="Zorvath", answer="Quelmin", **over):
    row = {"id": fid, "key": f"capital:{subject}", "relation": "capital", "subject": subject,
           "text": f"The capital of {subject} is {answer}.", "answer": answer,
           "train_questions": [f"What is the capital of {subject}?", f"Which city is the capital of {subject}?"],
           "heldout_question": f"Name the city where the government of {subject} is seated.",
           "heldout_questions": {"tune": [f"Name the city where the government of {subject} is seated."],
                                 "report": [f"Tell me the capital city of {subject}."],
                                 "final": [f"Which city is home to the government of {subject}?"]},
           "supersedes": None}
    row.update(over)
    return row


def _write(path: Path, *rows: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_good_bad_input_row_loads(tmp_path):
    (f,) = load_facts(_write(tmp_path / "facts.jsonl", _row()))
    assert f.heldout_for("report") == ("Tell me the capital city of Zorvath.",)


def test_heldout_wording_equal_to_a_training_wording_names_the_fact_and_the_wording(tmp_path):
    bank = {"tune": ["Name the city where the government of Zorvath is seated."],
            "report": ["  what is the CAPITAL of  Zorvath "], "final": ["Which city is home to Zorvath's rulers?"]}
    p = _write(tmp_path / "facts.jsonl", _row(), _row("t002", heldout_questions=bank))
    with pytest.raises(ValueError, match=r"fact t002: held-out wording '  what is the CAPITAL of  Zorvath ' equals "
                                         r"training wording 'What is the capital of Zorvath\?'"):
        load_facts(p)
    single = _row("t003", heldout_question="Which city is the capital of Zorvath?", heldout_questions={})
    with pytest.raises(ValueError, match=r"t003.*'Which city is the capital of Zorvath\?'"):
        load_facts(_write(tmp_path / "single.jsonl", single))


def test_wording_sets_that_overlap_name_both_sets(tmp_path):
    w = "Tell me the capital city of Zorvath."
    bank = {"tune": ["Name the city where the government of Zorvath is seated."], "report": [w], "final": [w]}
    with pytest.raises(ValueError, match=r"fact t001: held-out wording .*Tell me the capital city of Zorvath.* is "
                                         r"in both the 'report' and the 'final' sets"):
        load_facts(_write(tmp_path / "facts.jsonl", _row(heldout_questions=bank)))
    twice = {**bank, "final": ["Which city is home to the government of Zorvath?"] * 2}
    with pytest.raises(ValueError, match="twice in the 'final' set"):
        load_facts(_write(tmp_path / "twice.jsonl", _row(heldout_questions=twice)))


def test_the_read_wording_may_not_sit_in_the_report_or_final_set(tmp_path):
    old = "Name the city where the government of Zorvath is seated."
    bank = {"tune": ["From which city is Zorvath governed?"], "report": [old],
            "final": ["Which city is home to the government of Zorvath?"]}
    with pytest.raises(ValueError, match=r"t001.*'report' set; it may only be a 'tune' wording"):
        load_facts(_write(tmp_path / "facts.jsonl", _row(heldout_questions=bank)))


def test_a_bank_without_a_split_or_of_the_wrong_shape_is_refused(tmp_path):
    bank = {"tune": ["Name the city where the government of Zorvath is seated."],
            "report": ["Tell me the capital city of Zorvath."]}
    with pytest.raises(ValueError, match=r"fact t001: heldout_questions must have .*'final'"):
        load_facts(_write(tmp_path / "facts.jsonl", _row(heldout_questions=bank)))
    with pytest.raises(ValueError, match="line 1: bad fact"):
        load_facts(_write(tmp_path / "shape.jsonl", _row(heldout_questions={"tune": "one string"})))


def test_a_final_fact_sharing_a_name_with_an_earlier_split_names_the_fact_and_the_name(tmp_path, shipped, practice):
    taken = shipped[5]  # a shipped fact: its subject's first invented word is reused in a final fact
    word = sorted(invented_names(taken))[0]
    good = _row("x001", subject="Plimvorth", answer="Quendrastel", heldout_question=None)
    good["heldout_question"] = good["heldout_questions"]["final"][0]
    bad = _row("x002", subject="Trelvask", answer=word)
    bad["heldout_question"] = bad["heldout_questions"]["final"][0]
    p = _write(tmp_path / "final_facts.jsonl", good, bad)
    with pytest.raises(ValueError, match=rf"final fact x002 shares the name '{word}' with earlier fact {taken.id}"):
        load_final_facts(p)
    pword = sorted(invented_names(practice[0]))[0]
    bad2 = {**bad, "subject": pword, "answer": "Quendrastelix"}
    bad2["heldout_questions"] = {s: [q.replace("Trelvask", pword) for q in ws]
                                 for s, ws in bad["heldout_questions"].items()}
    bad2["heldout_question"] = bad2["heldout_questions"]["final"][0]
    with pytest.raises(ValueError, match=rf"x002 shares the name '{pword}' with earlier fact p\d+"):
        load_final_facts(_write(tmp_path / "final2.jsonl", good, bad2))
    earlier = _write(tmp_path / "earlier.jsonl", _row("e001", subject="Plimvorth Bay"))
    with pytest.raises(ValueError, match="x001 shares the name 'Plimvorth' with earlier fact e001"):
        load_final_facts(_write(tmp_path / "final3.jsonl", good), earlier=[earlier])
    assert [f.id for f in load_final_facts(_write(tmp_path / "final4.jsonl", good))] == ["x001"]
