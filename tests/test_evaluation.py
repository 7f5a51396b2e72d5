import math

import pytest

from stmltm_nb.memory.cartridge import Cartridge
from stmltm_nb.memory.stm import STMBuffer
from stmltm_nb.metrics import recall as evaluation
from stmltm_nb.metrics.recall import RESIDUAL_ONLY, compare_memories, evaluate_recall, questions_for, spread

MODES = ("no memory", "STM (all items)", "STM (own chunk, oracle)", "LTM (cartridge)", "LTM + residual STM",
         RESIDUAL_ONLY)


def test_compare_memories_table_splits_cartridge_and_residual_facts(tiny, facts, monkeypatch):
    trained, residual = facts[:3], facts[3:5]
    resid_answers = {f.answer for f in residual}
    # a stand-in judge: only residual facts count as answered, so the split is visible in the table
    monkeypatch.setattr(evaluation, "answer_found", lambda gold, out: gold in resid_answers)
    stm_text = "".join(f.text + "\n" for f in trained)
    cart = Cartridge.create(tiny.model, tiny.tokenizer, p=8, stm_text=stm_text)
    table = compare_memories(tiny.model, tiny.tokenizer, trained, cart, residual=residual, chunk_size=2,
                             max_new_tokens=2, retention_text="Rivers flow to the sea.")
    recall = table[table["questions"].isin(["train", "heldout"])]
    assert list(dict.fromkeys(recall["mode"])) == list(MODES)
    assert set(recall["questions"]) == {"train", "heldout"}
    every = recall[recall["mode"] != RESIDUAL_ONLY]
    assert (every["n_questions"] == 5).all()
    assert (every["recall_cart"] == 0).all() and (every["recall_resid"] == 1).all()
    assert every["recall"].tolist() == pytest.approx([2 / 5] * len(every))
    assert ((recall["lo"] <= recall["recall"]) & (recall["recall"] <= recall["hi"])).all()
    retention = table[table["questions"].str.startswith("retention")]
    assert len(retention) == 5 and retention["answer_nll"].map(math.isfinite).all()  # the oracle has no buffer


def test_residual_only_row_is_the_residual_facts_alone_in_stm(tiny, facts, monkeypatch):
    """The row asks the residual facts only, against an STM holding just them (no cartridge): its answer NLL is
    that of a plain buffer of the residual items, and recall_cart is NaN (those facts are not in it)."""
    trained, residual = facts[:2], facts[2:4]
    monkeypatch.setattr(evaluation, "answer_found", lambda gold, out: gold == residual[0].answer)
    cart = Cartridge.create(tiny.model, tiny.tokenizer, p=8, stm_text="".join(f.text + "\n" for f in trained))
    table = compare_memories(tiny.model, tiny.tokenizer, trained, cart, residual=residual, kinds=("train",),
                             max_new_tokens=2, retention_text="Text.")
    row = table[(table["mode"] == RESIDUAL_ONLY) & (table["questions"] == "train")].iloc[0]
    alone = STMBuffer(tiny.model, tiny.tokenizer)
    alone.extend([f.to_item() for f in residual])
    ref = evaluate_recall(alone, residual, "train", max_new_tokens=2, first_question_only=True)
    assert row["n_questions"] == len(residual) == ref.total
    assert row["recall"] == row["recall_resid"] == pytest.approx(0.5) and math.isnan(row["recall_cart"])
    assert row["answer_nll"] == pytest.approx(ref.nll, abs=1e-6)
    no_cart = compare_memories(tiny.model, tiny.tokenizer, trained, None, residual=residual, kinds=("train",),
                               max_new_tokens=1, retention_text="Text.")
    assert RESIDUAL_ONLY not in set(no_cart["mode"])


def test_compare_memories_all_questions_per_fact(tiny, facts, monkeypatch):
    trained, residual = facts[:2], facts[2:3]
    monkeypatch.setattr(evaluation, "answer_found", lambda gold, out: gold == trained[0].answer)
    table = compare_memories(tiny.model, tiny.tokenizer, trained, None, residual=residual, kinds=("train",),
                             first_question_only=False, max_new_tokens=2, retention_text="Text.")
    row = table[(table["mode"] == "STM (all items)") & (table["questions"] == "train")].iloc[0]
    per_fact = len(questions_for(trained[0], "train"))
    assert row["n_questions"] == 3 * per_fact
    assert row["recall_cart"] == pytest.approx(0.5) and row["recall_resid"] == 0


def test_questions_for_and_spread(facts):
    assert questions_for(facts[0], "heldout") == [facts[0].heldout_question]
    with pytest.raises(ValueError, match="question kind"):
        questions_for(facts[0], "other")
    assert spread(list(range(10)), 3) == [0, 4, 9] and spread([1, 2], 5) == [1, 2]
