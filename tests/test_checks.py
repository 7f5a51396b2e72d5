"""The commit checks on fake memories: each served mode is checked on its own and both must pass."""

import pytest

import stmltm_nb.decision.checks as C
from stmltm_nb.memory.items import STMItem


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
TEMPLATES = {"i0": ["q0"], "i1": ["q1"], "i7": ["q7"], "i8": ["q8"]}
SERVING = Mem({"q7", "q8"}, 2.0)
BASE = Mem(set(), 2.0)
RESIDUAL = [*NEW, _item(5)]


def _run(cart):
    return C.candidate_checks(cart, BASE, SERVING, NEW, OLD, RESIDUAL, {}, TEMPLATES, gamma_reg=0.1,
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
    unasked = C.candidate_checks(Cart({"q7", "q8"}, 2.0), BASE, SERVING, [NEW[2]], OLD, [NEW[2]], {}, TEMPLATES,
                                 0.1, 0.25, "t")
    assert unasked["q_cart"] is None and unasked["unchecked"] == ["i2"] and unasked["reason"] == "absorbed nothing"


def test_probes_win_over_templates():
    q, a = C.item_question(NEW[0], {"i0": ("held-out q0?", "x")}, TEMPLATES)
    assert (q, a) == ("held-out q0?", "x")
    assert C.item_question(NEW[1], {}, TEMPLATES) == ("q1", "q1")
