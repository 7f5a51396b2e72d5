import pytest

from stmltm_nb.memory.cartridge import Cartridge
from stmltm_nb.memory.retrieval import RetrievalMemory
from stmltm_nb.memory.stm import STMBuffer
from stmltm_nb.metrics import comparison as C
from stmltm_nb.metrics import recall as evaluation
from stmltm_nb.metrics.recall import (
    compare_memories,
    evaluate_recall,
    question_records,
    questions_for,
    spread,
)


def test_compare_memories_table_splits_cartridge_and_residual_facts(tiny, facts, monkeypatch):
    trained, residual = facts[:3], facts[3:5]
    resid_answers = {f.answer for f in residual}
    # a stand-in judge: only residual facts count as answered, so the split is visible in the table
    monkeypatch.setattr(evaluation, "answer_found", lambda gold, out: gold in resid_answers)
    stm_text = "".join(f.text + "\n" for f in trained)
    cart = Cartridge.create(tiny, p=8, stm_text=stm_text)
    table = compare_memories(tiny, trained, cart, residual=residual, chunk_size=2,
                             max_new_tokens=2, split="report", n_boot=100)
    assert list(dict.fromkeys(table["mode"])) == list(C.MODES)
    assert set(table["questions"]) == {"train", "heldout"}
    every = table[table["mode"] != C.RESIDUAL_ONLY]
    train = every[every["questions"] == "train"]
    held = every[every["questions"] == "heldout"]
    assert (train["n_questions"] == 5).all()  # the first trained template of each fact
    assert (held["n_questions"] == 5 * len(trained[0].heldout_for("report"))).all()  # every report wording
    assert (every["recall_cart"] == 0).all() and (every["recall_resid"] == 1).all()
    assert every["recall"].tolist() == pytest.approx([2 / 5] * len(every))
    assert ((table["lo"] <= table["recall"]) & (table["recall"] <= table["hi"])).all()
    assert (table["split"] == "report").all()


def test_residual_only_row_is_the_residual_facts_alone_in_stm(tiny, facts, monkeypatch):
    """The row asks the residual facts only, against an STM holding just them (no cartridge)."""
    trained, residual = facts[:2], facts[2:4]
    monkeypatch.setattr(evaluation, "answer_found", lambda gold, out: gold == residual[0].answer)
    cart = Cartridge.create(tiny, p=8, stm_text="".join(f.text + "\n" for f in trained))
    table = compare_memories(tiny, trained, cart, residual=residual, kinds=("train",),
                             max_new_tokens=2, n_boot=100)
    row = table[(table["mode"] == C.RESIDUAL_ONLY) & (table["questions"] == "train")].iloc[0]
    alone = STMBuffer(tiny)
    alone.extend([f.to_item() for f in residual])
    ref = evaluate_recall(alone, residual, "train", max_new_tokens=2, first_question_only=True)
    assert row["n_questions"] == len(residual) == ref.total
    assert row["recall"] == row["recall_resid"] == pytest.approx(0.5) and row["recall_cart"] != row["recall_cart"]  # NaN
    no_cart = compare_memories(tiny, trained, None, residual=residual, kinds=("train",),
                               max_new_tokens=1, n_boot=100)
    assert C.RESIDUAL_ONLY not in set(no_cart["mode"]) and C.LTM not in set(no_cart["mode"])


def test_question_records_seeds_and_teacher_alone(tiny, facts, monkeypatch):
    """Each cartridge seed is asked separately; the teacher asks each fact with that fact alone in STM."""
    trained = facts[:3]
    seen = []
    real_answer = STMBuffer.answer

    def spy(self, q, max_new_tokens=24):
        seen.append([it.id for it in self.items])
        return real_answer(self, q, max_new_tokens=1)

    monkeypatch.setattr(STMBuffer, "answer", spy)
    carts = {s: Cartridge.create(tiny, p=4, stm_text="x\n") for s in (0, 1)}
    recs = question_records(tiny, trained, carts, kinds=("train",),
                            modes=[C.TEACHER, C.LTM])
    assert [r["mode"] for r in recs] == [C.TEACHER] * 3 + [C.LTM] * 6
    assert [r["seed"] for r in recs if r["mode"] == C.LTM] == [0, 0, 0, 1, 1, 1]
    assert seen[:3] == [[f.id] for f in trained]
    with pytest.raises(ValueError, match="unknown memory modes"):
        question_records(tiny, trained, None, modes=["crystal ball"])


def test_batched_questions_give_the_records_of_one_by_one(tiny, facts):
    """``batch_size`` changes how questions are answered, not what: the same records (hits, order, NLL) as one
    by one, each saying its batch; a memory without ``answer_many`` (retrieval) is asked one by one."""
    trained, residual = facts[:3], facts[3:5]
    cart = Cartridge.create(tiny, p=8, stm_text="".join(f.text + "\n" for f in trained))
    kw = {"split": "report", "max_new_tokens": 3, "with_nll": True, "modes": [C.LTM, C.SERVED, C.RETRIEVAL]}
    one = question_records(tiny, trained, {0: cart}, residual=residual, **kw)
    many = question_records(tiny, trained, {0: cart}, residual=residual, batch_size=4, **kw)
    drop = ("s", "batch")
    assert [{k: v for k, v in r.items() if k not in drop} for r in many] == \
        [{k: v for k, v in r.items() if k not in drop} for r in one]
    assert {r.get("batch") for r in many if r["mode"] != C.RETRIEVAL} == {4}
    assert all("batch" not in r for r in one) and all("batch" not in r for r in many if r["mode"] == C.RETRIEVAL)
    assert len(one) == 3 * 5 * (1 + len(trained[0].heldout_for("report")))  # 3 memories, 5 facts, train + held-out


def test_retrieval_memory_puts_the_matching_note_in_context(tiny, facts):
    notes = [f.to_item() for f in facts[:12]]
    mem = RetrievalMemory(tiny, notes, k=2)
    target = facts[5]
    got = mem.retrieve(target.train_questions[0])
    assert target.id in [it.id for it in got] and len(got) <= 2
    assert [it.id for it in mem.context(target.train_questions[0]).items] == [it.id for it in got]
    assert isinstance(mem.answer(target.train_questions[0], max_new_tokens=2), str)
    assert RetrievalMemory(tiny, [], k=2).retrieve("anything?") == []
    with pytest.raises(ValueError, match="k must be"):
        RetrievalMemory(tiny, notes, k=0)


def test_questions_for_and_spread(facts):
    assert questions_for(facts[0], "heldout") == [facts[0].heldout_question]
    assert questions_for(facts[0], "heldout", split="report") == list(facts[0].heldout_for("report"))
    with pytest.raises(ValueError, match="question kind"):
        questions_for(facts[0], "other")
    assert spread(list(range(10)), 3) == [0, 4, 9] and spread([1, 2], 5) == [1, 2]


def test_recall_curve_splits_a_buffers_answers_back_by_position(tiny, facts, monkeypatch):
    """The STM recall curve asks every question about one buffer at once and splits the answers back by position:
    each row's hits are those of its own facts (an answer names its fact; facts of even index count as hits), both
    one by one and batched, so a wrong slice shows."""
    from stmltm_nb.metrics.measure import recall_curve

    pool = facts[:12]
    fact_of = {f.train_questions[0]: f for f in pool}
    hit_ids = {f.id for i, f in enumerate(pool) if i % 2 == 0}

    def answer(self, q, max_new_tokens=24):
        return fact_of[q].id

    def answer_many(self, qs, max_new_tokens=24, batch_size=16):
        seen.append(len(qs))
        return [fact_of[q].id for q in qs]

    seen: list[int] = []
    monkeypatch.setattr(STMBuffer, "answer", answer)
    monkeypatch.setattr(STMBuffer, "answer_many", answer_many)
    monkeypatch.setattr(evaluation, "answer_found", lambda gold, out: out in hit_ids)
    kw = {"sizes": [2, 4], "per_position": 2, "min_questions": 6}
    for batch in (1, 8):
        rows = recall_curve(tiny, pool, batch_size=batch, **kw)
        assert {r["position"] for r in rows} == {"start", "middle", "end"}
        for r in rows:
            assert r["total"] == len(r["facts"]) and r["hits"] == sum(i in hit_ids for i in r["facts"]), r
        assert 0 < sum(r["hits"] for r in rows) < sum(r["total"] for r in rows)
    assert seen and max(seen) > 2  # batched: a buffer's questions of several positions at once


def test_progress_bars_count_every_group_and_every_question_to_the_end(tiny, facts, capsys):
    """The STM-vs-LTM questions' bar moves once per (question kind, fact role) group of each memory a mode builds, and
    the recall curve's once per buffer by its questions: each ends at its total, so a first run never sits on a bar
    that only moves between memory modes or STM sizes."""
    from stmltm_nb.metrics.measure import POSITIONS, curve_plan, recall_curve

    question_records(tiny, facts[:3], None, modes=[C.NO_MEMORY, C.TEACHER], kinds=("train",), progress=True)
    total = (1 + 3) * 1 * 2  # no memory: one memory; the teacher: one per fact; one kind; two roles
    assert f"{total}/{total}" in capsys.readouterr().err
    recall_curve(tiny, facts, [1, 4], per_position=1, min_questions=2, progress=True)
    asked = sum(len(idx) for n in (1, 4) for *_, idx in curve_plan(n, len(facts), 1, 2, POSITIONS))
    assert f"{asked}/{asked}" in capsys.readouterr().err
