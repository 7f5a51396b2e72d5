"""The commit checks on fake memories: each served mode is checked on its own and both must pass."""

import pytest

import stmltm_nb.decision.checks as C
from stmltm_nb.memory.items import STMItem
from stmltm_nb.memory.questions import ItemQuestions


class Mem:
    """A memory that knows some answers; ``nll`` is its general-text NLL (nats/token)."""

    def __init__(self, known, nll, residual=()):
        self.known, self.nll, self.residual = set(known), nll, list(residual)

    def answer(self, q, max_new_tokens=16):
        return q.upper() if q in self.known else "no idea"


class Cart:
    def __init__(self, known, nll, served_known=None, served_nll=None):
        self.known, self.nll = known, nll
        self.served_known, self.served_nll = served_known, served_nll
        self.residuals = []

    def memory(self, residual=None, **kw):
        if residual is None:
            return Mem(self.known, self.nll)
        self.residuals.append([it.id for it in residual])
        known = self.known if self.served_known is None else self.served_known
        return Mem(known, self.nll if self.served_nll is None else self.served_nll, residual)


@pytest.fixture(autouse=True)
def fake_nll(monkeypatch):
    monkeypatch.setattr(C, "text_nll", lambda mem, text: mem.nll)


def _item(i, answer=True):
    return STMItem(text=f"fact {i}", id=f"i{i}", answer=f"q{i}" if answer else None)


NEW = [_item(0), _item(1), _item(2, answer=False)]
OLD = [_item(7), _item(8)]
QUESTIONS = {i: ItemQuestions([q]) for i, q in {"i0": "q0", "i1": "q1", "i7": "q7", "i8": "q8"}.items()}
SERVING = Mem({"q7", "q8"}, 2.0)
BASE = Mem(set(), 2.0)
RESIDUAL = [*NEW, _item(5)]


def _run(cart):
    return C.candidate_checks(cart, BASE, SERVING, NEW, OLD, RESIDUAL, QUESTIONS, gamma_reg=0.1,
                              retention_tol=0.25, text="general text")


def test_passed_items_leave_stm_and_the_rest_is_served_with_the_candidate():
    cart = Cart({"q0", "q7", "q8"}, 2.1)
    out = _run(cart)
    assert out["holdout_passed"] == ["i0"] and out["holdout_failed"] == ["i1"] and out["unchecked"] == ["i2"]
    assert out["q_cart"] == 0.5 and out["reason"] is None
    assert cart.residuals == [["i1", "i2", "i5"]] and out["residual_after"] == 3
    assert out["regression_old"] == out["regression_ltm"] == out["regression_served"] == 1.0
    assert (out["retention_base_nll"], out["retention_ltm_nll"]) == (2.0, 2.1)


def test_retention_fails_on_the_served_memory_alone():
    out = _run(Cart({"q0", "q7", "q8"}, 2.1, served_nll=2.6))
    assert out["retention_ltm_pass"] and not out["retention_served_pass"] and out["reason"] == "retention"


def test_regression_fails_on_the_served_memory_alone():
    out = _run(Cart({"q0", "q7", "q8"}, 2.0, served_known={"q0"}))
    assert out["regression_ltm_pass"] and not out["regression_served_pass"] and out["reason"] == "regression"
    assert out["regression_served"] == 0.0


def test_a_candidate_that_absorbs_nothing_is_refused_first():
    out = _run(Cart(set(), 9.0))  # fails everything: absorbing nothing is the reason reported
    assert out["q_cart"] == 0.0 and out["reason"] == "absorbed nothing"
    unasked = C.candidate_checks(Cart({"q7", "q8"}, 2.0), BASE, SERVING, [NEW[2]], OLD, [NEW[2]], QUESTIONS, 0.1,
                                  0.25, "t")
    assert unasked["q_cart"] is None and unasked["unchecked"] == ["i2"] and unasked["reason"] == "absorbed nothing"


def test_probes_win_over_templates():
    q, a = C.item_question(NEW[0], {"i0": ItemQuestions(["q0"], ("held-out q0?", "x"))})
    assert (q, a) == ("held-out q0?", "x")
    assert C.item_question(NEW[1], QUESTIONS) == ("q1", "q1")  # no probe: the first template, the item's answer
    assert C.item_question(NEW[1], {}) == (None, "q1")  # no questions at all: unchecked


def test_the_record_of_a_fact_holds_its_training_questions_and_its_probe(facts):
    from stmltm_nb.memory.questions import questions_of, training_templates

    f = facts[0]
    rec = ItemQuestions.of_fact(f)
    assert rec.train == tuple(f.train_questions) and rec.probe == (f.heldout_question, f.answer)
    assert rec.check("ignored") == (f.heldout_question, f.answer)  # the probe wins over the item's own answer
    qs = questions_of(facts[:3])
    assert list(qs) == [g.id for g in facts[:3]] and qs[f.id] == rec
    assert training_templates(qs) == {g.id: tuple(g.train_questions) for g in facts[:3]}  # probes never trained on
    assert ItemQuestions(["a?", "b?"]).train == ("a?", "b?") and ItemQuestions().check("y") == (None, "y")
    with pytest.raises(TypeError, match="one string"):
        ItemQuestions("a single question?")
    with pytest.raises(ValueError, match="question, answer"):
        ItemQuestions(["a?"], ("only a question?",))
