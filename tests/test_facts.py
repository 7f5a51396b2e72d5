import importlib.util
from collections import Counter

from stmltm_nb.memory.facts import chunks, general_text, load_facts
from stmltm_nb.metrics.recall import answer_found
from stmltm_nb.shipped import data_dir


def test_fact_set_shape():
    base = load_facts()
    allf = load_facts(contradictions=True)
    assert len(base) >= 200
    assert len({f.id for f in allf}) == len(allf)
    assert len({f.key for f in base}) == len(base)  # no contradiction inside the clean set
    assert all(len(f.train_questions) == 2 and f.heldout_question not in f.train_questions for f in base)
    assert all(f.subject in f.heldout_question and f.answer in f.text for f in allf)
    assert len(Counter(f.relation for f in base)) >= 10


def test_contradictions_share_key_and_change_value():
    allf = load_facts(contradictions=True)
    by_id = {f.id: f for f in allf}
    contra = [f for f in allf if f.supersedes]
    assert len(contra) >= 5
    for c in contra:
        old = by_id[c.supersedes]
        assert c.key == old.key and c.answer != old.answer


def test_committed_file_equals_fresh_build(tmp_path):
    spec = importlib.util.spec_from_file_location("build_facts", data_dir() / "build_facts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import json

    rows = mod.build()
    rebuilt = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    assert rebuilt == (data_dir() / "facts.jsonl").read_text()
    practice = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in mod.build_practice(rows))
    assert practice == (data_dir() / "practice_facts.jsonl").read_text()


def test_practice_facts_and_retention_prompts_never_touch_what_is_evaluated():
    from stmltm_nb.memory.facts import load_practice_facts, retention_prompts

    practice, shipped = load_practice_facts(), load_facts(contradictions=True)
    assert len(practice) == 48 and all(p.id.startswith("p") for p in practice)
    style = {"The", "Chronicle", "Works"}  # the subject templates' own words ('The X Chronicle', 'X Works')

    def invented(f):
        return {w.strip("'") for w in (f.subject + " " + f.answer).split() if w[:1].isupper()} - style

    assert not set().union(*map(invented, practice)) & set().union(*map(invented, shipped))
    assert not {p.subject for p in practice} & {f.subject for f in shipped}
    prompts = retention_prompts()
    assert len(prompts) == 40 and not any(p in general_text() for p in prompts)


def test_helpers():
    assert chunks(list(range(5)), 2) == [[0, 1], [2, 3], [4]]
    assert answer_found("Mirelle", "The capital is mirelle.") and not answer_found("Mirelle", "Paris")
    assert "Water" in general_text()
