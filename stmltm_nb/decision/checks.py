"""The checks a candidate cartridge must pass before it is committed, on the memory as it would be served.

- Held-out recall (q_cart): each new item's held-out probe (else its first training template) asked of the
  candidate alone. Items that pass are absorbed; the others (and items without a question) stay in STM.
- Regression on protected items (absorbed earlier): recall of the serving memory now vs the candidate
  **alone** and vs the candidate **+ the residual STM that would remain** after the commit; each may drop by at
  most ``gamma_reg``.
- Retention of a general text: NLL (nats/token) with no memory, with the candidate alone and with the
  candidate + remaining residual STM; each may rise by at most ``retention_tol`` over no memory.

A commit needs an absorbed item and every check passing in both served modes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stmltm_nb.memory.items import STMItem
from stmltm_nb.memory.questions import ItemQuestions
from stmltm_nb.metrics.recall import answer_found, text_nll

REASONS = ("absorbed nothing", "regression", "retention")


def item_question(it: STMItem, questions: Mapping[str, ItemQuestions]) -> tuple[str | None, str | None]:
    """(question, answer) that checks ``it``: its held-out probe, else its first training template with its own
    answer (:meth:`~stmltm_nb.memory.questions.ItemQuestions.check`); (None, answer) for an item with neither."""
    return questions.get(it.id, ItemQuestions()).check(it.answer)


def holdout(mem: Any, items: Sequence[STMItem], questions: Mapping[str, ItemQuestions]) -> dict[str, Any]:
    """Ask each item's question of ``mem``: passed, failed and unchecked ids, and q_cart (a fraction; None: no
    question asked)."""
    passed, failed, unchecked = [], [], []
    for it in items:
        q, a = item_question(it, questions)
        if not q or not a:
            unchecked.append(it.id)
        elif answer_found(a, mem.answer(q)):
            passed.append(it.id)
        else:
            failed.append(it.id)
    asked = len(passed) + len(failed)
    return {"q_cart": len(passed) / asked if asked else None, "holdout_passed": passed, "holdout_failed": failed,
            "unchecked": unchecked}


def recall_on(mem: Any, items: Sequence[STMItem], questions: Mapping[str, ItemQuestions]) -> float:
    """Fraction of ``items`` (with a training question and an answer) that ``mem`` answers when asked their first
    training question; 1.0 when none."""
    asked = [(t[0], it.answer) for it in items if (t := questions.get(it.id, ItemQuestions()).train) and it.answer]
    if not asked:
        return 1.0
    return sum(answer_found(a, mem.answer(q)) for q, a in asked) / len(asked)


def candidate_checks(cand: Any, base: Any, serving: Any, new_items: Sequence[STMItem], replay: Sequence[STMItem],
                     residual: Sequence[STMItem], questions: Mapping[str, ItemQuestions], gamma_reg: float,
                     retention_tol: float, text: str) -> dict[str, Any]:
    """Every check of a candidate. ``cand``: the candidate cartridge; ``base``: a buffer with no memory;
    ``serving``: the memory served now; ``residual``: the residual STM now (the remaining part is what did
    not pass); ``questions``: each item's questions by id. Recall as fractions, NLL in nats/token; ``reason``
    is None when the candidate may commit."""
    ltm = cand.memory()
    out = holdout(ltm, new_items, questions)
    gone = set(out["holdout_passed"])
    remaining = [it for it in residual if it.id not in gone]
    served = cand.memory(residual=remaining, allow_duplicates=True)
    out["residual_after"] = len(remaining)
    reg_old = recall_on(serving, replay, questions)
    out.update(regression_old=reg_old, regression_ltm=recall_on(ltm, replay, questions),
               regression_served=recall_on(served, replay, questions))
    out["regression_ltm_pass"] = reg_old - out["regression_ltm"] <= gamma_reg
    out["regression_served_pass"] = reg_old - out["regression_served"] <= gamma_reg
    out["regression_pass"] = out["regression_ltm_pass"] and out["regression_served_pass"]
    nll_base = text_nll(base, text)
    out.update(retention_base_nll=nll_base, retention_ltm_nll=text_nll(ltm, text),
               retention_served_nll=text_nll(served, text))
    out["retention_ltm_pass"] = out["retention_ltm_nll"] - nll_base <= retention_tol
    out["retention_served_pass"] = out["retention_served_nll"] - nll_base <= retention_tol
    out["retention_pass"] = out["retention_ltm_pass"] and out["retention_served_pass"]
    out["reason"] = verdict(out)
    return out


def verdict(checks: dict[str, Any]) -> str | None:
    """Why a candidate must not be committed (one of :data:`REASONS`), or None when it may."""
    if not checks.get("holdout_passed"):
        return "absorbed nothing"
    if not checks.get("regression_pass", True):
        return "regression"
    if not checks.get("retention_pass", True):
        return "retention"
    return None
