"""The streaming controller: ingest items one by one, evaluate the online switching rule, consolidate STM → LTM,
check the candidate on the memory as it would be served, commit atomically or reject it. Every decision goes
to a JSONL event log with all its terms.

The parts, one job each: :mod:`~stmltm_nb.decision.online` (the rule, shared with the policy simulator),
:mod:`~stmltm_nb.decision.state` (the typed commit record), :mod:`~stmltm_nb.decision.store` (the folder: lock,
item log, state, events, versions), :mod:`~stmltm_nb.decision.checks` (the commit checks) and
:mod:`~stmltm_nb.decision.controller_config` (the knobs and their priors).

Residual STM = logged items − absorbed by the serving version and its ancestors − superseded (a newer item
with the same key always wins). On restart the residual STM is rebuilt from the log, so a kill at any point
loses nothing. One controller writes a folder at a time (an OS lock, released by :meth:`Controller.close`, the
end of a ``with`` block, or the death of the process).

Learning from failures: a candidate that absorbs nothing, or fails regression or retention in either served
mode (candidate alone, candidate + remaining residual STM), is rejected; its measured held-out recall and
incurred c_upd replace the priors of the next decisions (kept in the state, so they survive a restart), and the
rule backs off by a factor that depends on the reason (``ControllerConfig.backoff_*``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from stmltm_nb.decision.checks import candidate_checks, verdict
from stmltm_nb.decision.controller_config import ControllerConfig
from stmltm_nb.decision.online import OnlineDecision, rule_spec
from stmltm_nb.decision.state import ControllerState
from stmltm_nb.decision.store import EVENTS_FILE, ITEMS_FILE, STATE_FILE, FolderBusyError, Store
from stmltm_nb.decision.switching import Decision, SwitchInputs, advantage, decide
from stmltm_nb.memory.cartridge import Cartridge
from stmltm_nb.memory.cartridge_files import CartridgeError
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.consolidation import Lesson, RunOptions, consolidate, update
from stmltm_nb.memory.items import STMError, STMItem, validate_item
from stmltm_nb.memory.questions import ItemQuestions, training_templates
from stmltm_nb.memory.stm import STMBuffer
from stmltm_nb.metrics.governance import superseded_ids
from stmltm_nb.models import LoadedModel

__all__ = ["Controller", "ControllerConfig", "FolderBusyError", "STATE_FILE", "ITEMS_FILE", "EVENTS_FILE"]


class Controller:
    """STM → LTM controller over one model and one folder. ``questions[item_id]`` is the item's record
    (:class:`~stmltm_nb.memory.questions.ItemQuestions`): its training questions and the (question, answer) probe
    of the held-out check, never trained on (``questions_of(facts)`` builds it for facts). An item without an entry
    has no training question: it stays in residual STM. Raises :class:`FolderBusyError` when another controller
    has ``root`` open, and TypeError when a value of ``questions`` is not an ItemQuestions."""

    def __init__(self, lm: LoadedModel, root: str | os.PathLike, questions: Mapping[str, ItemQuestions],
                 config: ControllerConfig | None = None, consolidation: ConsolidationConfig | None = None,
                 progress: bool = False):
        bad = next((k for k, q in questions.items() if not isinstance(q, ItemQuestions)), None)
        if bad is not None:
            raise TypeError(f"questions[{bad!r}] is {type(questions[bad]).__name__}, not ItemQuestions "
                            "(build the mapping with questions_of(facts) or ItemQuestions(train, probe))")
        self.lm = lm
        self.questions = dict(questions)
        self.cfg = config or ControllerConfig()
        self.ccfg = consolidation or ConsolidationConfig()
        self.progress = progress
        self.store = Store(root)
        try:
            self.state: ControllerState = self.store.read_state()
            self.items: list[STMItem] = self.store.read_items()
            self.cartridge: Cartridge | None = None
            self.memory: STMBuffer | None = None
            self._load_current()
        except BaseException:
            self.store.close()
            raise
        c = self.cfg
        spec = rule_spec(c.policy)  # the simulator's rule table (issue #28); the controller keeps its η, m_floor
        self.rule = spec.rule(eta=c.eta, m_floor=c.m_floor, ema=c.ema, prior_rate=c.queries_per_item,
                              retry_at_n=self.state.retry_at_n, **({"beta": c.beta} if spec.mode == "renewal" else {}))
        self.rule.elapsed = float(len(self.residual()))  # after a restart: the cycle so far, in items
        self.queries_seen = self.queries_since_check = 0
        self.ingested_since_check = 0
        self.checks = 0

    @property
    def root(self) -> Path:
        return self.store.root

    def close(self) -> None:
        """Release the folder (idempotent); the controller cannot write afterwards."""
        self.store.close()

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----- persistence -----------------------------------------------------------------------------------------
    def event(self, kind: str, **data: Any) -> dict[str, Any]:
        """Append one event to the decision log."""
        return self.store.append_event({"time": time.time(), "event": kind, "version": self.state.version, **data})

    def events(self) -> list[dict[str, Any]]:
        return self.store.events()

    def _set_state(self, new: ControllerState) -> None:
        self.store.write_state(new)  # the commit point
        self.state = new

    def _load_current(self) -> None:
        v = self.state.version
        self.cartridge = None
        if v:
            try:
                self.cartridge = Cartridge.from_pretrained(self.store.version_dir(v), self.lm)
            except CartridgeError as e:
                raise CartridgeError(f"committed cartridge v{v} cannot be loaded: {e}") from e
        self._rebuild_memory()

    def _rebuild_memory(self) -> None:
        resid = self.residual()
        if self.cartridge is not None:
            self.memory = self.cartridge.memory(residual=resid, allow_duplicates=True)
        else:
            self.memory = STMBuffer(self.lm, allow_duplicates=True)
            self.memory.extend(resid)

    # ----- views ----------------------------------------------------------------------------------------------
    def absorbed_ids(self) -> set[str]:
        return self.state.absorbed_ids()

    def residual(self) -> list[STMItem]:
        """Items served from STM: not absorbed by the serving cartridge and not superseded."""
        gone = self.absorbed_ids() | superseded_ids(self.items)
        return [it for it in self.items if it.id not in gone]

    def absorbed_items(self) -> list[STMItem]:
        ids = self.absorbed_ids() - superseded_ids(self.items)
        return [it for it in self.items if it.id in ids]

    def lost_ids(self) -> list[str]:
        """Logged items that are neither absorbed, residual, nor superseded by a newer one (should be empty)."""
        covered = self.absorbed_ids() | {it.id for it in self.residual()} | superseded_ids(self.items)
        return [it.id for it in self.items if it.id not in covered]

    def accounted(self) -> bool:
        """Every logged item is absorbed, residual, or superseded by a newer one: nothing is lost."""
        return not self.lost_ids()

    # ----- streaming ------------------------------------------------------------------------------------------
    def ingest(self, item: STMItem, decide_now: bool = True) -> dict[str, Any] | None:
        """Log the item durably, serve it from STM at once, and evaluate the rule every ``check_every`` items."""
        if any(it.id == item.id for it in self.items):
            raise STMError(f"an item with id {item.id!r} was already ingested")
        validate_item(item)
        self.store.append_item(item)
        self.items.append(item)
        gone = superseded_ids(self.items)  # one rule for "newer value wins" (metrics.governance.key_conflicts)
        older = [it.id for it in self.items if item.key and it.key == item.key and it.id in gone and it.id != item.id]
        if older or item.id in gone:  # (an item that arrives with an earlier time than its key's newest loses)
            overridden = sorted(set(older) & self.absorbed_ids())  # this key's values held by the cartridge
            self._rebuild_memory()  # a newer value wins: drop the superseded item from STM
            self.event("supersede", item=item.id, key=item.key, overrides_cartridge=overridden)
        else:
            self.memory.append(item)
        self.ingested_since_check += 1
        if decide_now and self.ingested_since_check >= self.cfg.check_every:
            return self.check()
        return None

    def answer(self, question: str, max_new_tokens: int = 16) -> str:
        """Serve a query from cartridge + residual STM (counts toward the query rate ω)."""
        self.queries_seen += 1
        self.queries_since_check += 1
        return self.memory.answer(question, max_new_tokens)

    def trainable(self, item: STMItem) -> bool:
        """Whether ``item`` has a training question (only such items are trained on and can be absorbed)."""
        q = self.questions.get(item.id)
        return q is not None and bool(q.train)

    def rule_inputs(self) -> SwitchInputs:
        """The inequality's inputs now: measured values (state) where known, else the configured priors (q̂_cart(n)
        from the probe's points when configured; a measured held-out recall replaces them)."""
        cfg, meas = self.cfg, self.state.measured
        resid = self.residual()
        m = sum(1 for it in resid if self.trainable(it))  # evidence units: items that can be trained on
        return SwitchInputs(n=len(resid), Q=self.rule.q_hat(), c_upd=meas.get("c_upd_s", cfg.c_upd_prior),
                            r_cart=0.0 if self.cartridge else meas.get("r_cart_s", cfg.r_cart_prior),
                            cost=cfg.cost, recall=cfg.recall, q_cart=meas.get("q_cart", cfg.q_cart_prior),
                            q_cart_points=() if "q_cart" in meas else tuple(cfg.q_cart_points),
                            lam=cfg.lam, eta=cfg.eta, gamma=cfg.gamma, m=float(m), delta=cfg.delta, tau=cfg.tau)

    def check(self) -> dict[str, Any]:
        """Feed the rule what happened since the last check, decide, consolidate if it says so. Returns the
        logged decision event.

        G2 (SNR) is measured only when everything else says "consolidate": it needs the teacher targets of the
        residual items (cached, so the consolidation that follows reuses them) and one gradient per item.
        """
        self.checks += 1
        x = self.rule_inputs()
        a = advantage(x)
        self.rule.observe(a, ticks=float(self.ingested_since_check),
                          queries=float(self.queries_since_check) if self.queries_seen else None)
        self.ingested_since_check = self.queries_since_check = 0
        x = replace(x, Q=self.rule.q_hat())
        dec, od = decide(x), self.rule.evaluate(x.n, a, x.c_upd)
        forced = bool(self.cfg.force_every) and self.checks % self.cfg.force_every == 0 and x.n >= 1
        snr: dict[str, Any] | None = None
        if not forced and od.go and self.cfg.snr_gate and not _gates_blocking(dec):
            snr = self.measure_snr()
            if snr.get("snr_m") is not None:
                x = replace(x, snr=float(snr["snr_m"]), snr_lo=snr.get("snr_m_lo"), tau=self.cfg.tau)
                dec = decide(x)
        gates = _gates_blocking(dec)
        go = (od.go and not gates) or forced
        by = "forced" if forced and not (od.go and not gates) else (od.trigger if go else None)
        cooling = od.cooling and not forced
        blocked = ["backoff after rollback"] * cooling + gates + ["inequality"] * (od.trigger is None)
        rule = dec.to_json()
        rule.pop("consolidate")
        rule.update(blocked_by=[] if go else blocked, explanation=_explain(go, by, od, gates, x.n),
                    rule_says_consolidate=od.trigger is not None and od.evidence and not gates)
        ev = self.event("decision", consolidate=go, n=x.n, Q_hat=x.Q, rent=self.rule.rent.rent, forced=forced, by=by,
                        snr_measurement=snr, retry_at_n=self.rule.retry_at_n or None, online=od.terms, **rule)
        if go:
            self.consolidate()
        return ev

    def measure_snr(self) -> dict[str, Any]:
        """G2 online: SNR_m of the mean distillation gradient over the residual items (one gradient per item,
        at the cartridge's initialisation), with B_simple and the seconds it took. ``snr_m`` is None when fewer
        than two residual items have training questions."""
        from stmltm_nb.memory.consolidation import teacher_targets_for, untrained_cartridge
        from stmltm_nb.metrics.measure import per_item_gradient_signal

        t0 = time.perf_counter()
        items = [it for it in self.residual() if self.trainable(it)][: self.cfg.snr_max_items]
        if len(items) < 2:
            return {"snr_m": None, "m": len(items), "seconds": 0.0}
        tt = teacher_targets_for(self.lm, items, training_templates(self.questions), self.ccfg)
        sig = per_item_gradient_signal(untrained_cartridge(self.lm, items, self.ccfg), tt)
        return {"snr_m": sig.snr_m, "snr_m_lo": sig.snr_m_lo, "snr_1": sig.snr1, "b_simple": sig.b_simple, "m": sig.m,
                "m_needed": sig.m_needed(self.cfg.tau), "seconds": time.perf_counter() - t0}

    # ----- consolidation ------------------------------------------------------------------------------------------
    def consolidate(self) -> dict[str, Any]:
        """Train a candidate on residual STM + replay of absorbed items; check it; commit it or reject it.

        Only items with a training question are trained on and can be absorbed; the others stay in residual STM
        (the ``consolidate.start`` event names them and says why)."""
        v_new = self.state.next_version()
        residual, replay = self.residual(), self.absorbed_items()
        new_items = [it for it in residual if self.trainable(it)]
        untrainable = {it.id: "no training question" for it in residual if not self.trainable(it)}
        mode = self.update_mode(len(new_items))
        self.event("consolidate.start", new_items=sorted(it.id for it in new_items), replay=len(replay),
                   target_version=v_new, not_trainable=untrainable, mode=mode)
        if not new_items:
            return self._reject(v_new, "absorbed nothing", {"holdout_passed": [], "not_trainable": untrainable},
                                0.0, len(residual))
        lesson = Lesson(new_items, training_templates(self.questions), replay)
        if mode == "update":
            run = update(self.lm, self.cartridge, lesson, self.ccfg, RunOptions(progress=self.progress))
        else:
            run = consolidate(self.lm, lesson, self.ccfg, RunOptions(progress=self.progress))
        checks = self._checks(run.cartridge, new_items, replay)
        reason = verdict(checks)
        c_upd = float(run.seconds["incurred"])
        if reason is not None:
            return self._reject(v_new, reason, checks, c_upd, len(residual))
        measured = {"c_upd_s": c_upd, "q_cart": checks.get("q_cart")}
        absorbed = list(checks["holdout_passed"])
        kept = [it.id for it in residual if it.id not in set(absorbed)]
        cand, path = run.cartridge, self.store.version_dir(v_new)
        cand.record = cand.record.with_manifest({"parent": self.state.version, "absorbed": absorbed,
                                                 "replay": [it.id for it in replay], "checks": checks,
                                                 "seconds": run.seconds, "mode": mode})
        cand.save_pretrained(path, overwrite=path.exists())  # an uncommitted leftover of a crashed run is replaced
        self._set_state(self.state.commit(v_new, absorbed, kept, measured, mode=mode))
        self.rule.consolidated()
        self.cartridge = cand
        self._rebuild_memory()
        self.event("commit", reason="passed every check", absorbed=absorbed, kept_in_stm=kept, checks=checks,
                   c_upd_s=c_upd, not_trainable=untrainable, mode=mode)
        return {"committed": True, "reason": None, **checks}

    def update_mode(self, n_new: int = 0) -> str:
        """``"update"`` (warm-start from the serving cartridge) or ``"full"`` (retrain from scratch): full when
        nothing is served, incremental updates are off, ``full_retrain_every`` updates followed the last full
        retrain, the last candidate was rejected or rolled back, or the ``n_new`` items to train on are more than
        ``update_max_new`` (the update's step budget is sized for that many)."""
        if self.cartridge is None or not self.cfg.incremental or n_new > self.cfg.update_max_new:
            return "full"
        since = self.state.updates_since_full()
        return "update" if since is not None and since < self.cfg.full_retrain_every else "full"

    def _reject(self, v_new: int, reason: str, checks: dict[str, Any], c_upd: float, n: int) -> dict[str, Any]:
        """Record a rejected candidate: its measured values replace the priors, the rule backs off by the
        reason's factor; nothing is committed (the serving version and residual STM stay as they were)."""
        measured = {"c_upd_s": c_upd, "q_cart": checks.get("q_cart")} if c_upd > 0 else {}
        factor = self.cfg.backoff(reason)
        retry = self.rule.back_off(n, factor)
        self._set_state(self.state.reject_candidate(v_new, reason, retry, measured))
        self.event("rollback", reason=reason, candidate=v_new, checks=checks, c_upd_s=c_upd, retry_at_n=retry,
                   backoff_factor=factor)
        return {"committed": False, "reason": reason, **checks}

    def _checks(self, cand: Cartridge, new_items: list[STMItem], replay: list[STMItem]) -> dict[str, Any]:
        """Held-out recall of the new items, regression and retention for the candidate alone and with the
        residual STM that would remain (:func:`~stmltm_nb.decision.checks.candidate_checks`)."""
        from stmltm_nb.memory.facts import general_text

        return candidate_checks(cand, STMBuffer(self.lm), self.memory, new_items, replay,
                                self.residual(), self.questions, self.cfg.gamma_reg,
                                self.cfg.retention_tol, general_text())

    def rollback(self) -> int:
        """Serve the parent of the serving version again (a pointer swap); what it absorbed returns to STM."""
        if self.state.version == 0:
            raise ValueError("nothing to roll back: no committed cartridge")
        frm = self.state.version
        self._set_state(self.state.rollback())
        self._load_current()
        self.event("rollback", reason="requested", frm=frm, to=self.state.version)
        return self.state.version


def _gates_blocking(dec: Decision) -> list[str]:
    """Failing evidence gates (the inequality itself is the online rule's job)."""
    return [b for b in dec.blocked_by if b != "inequality"]


def _explain(go: bool, by: str | None, od: OnlineDecision, gates: list[str], n: float) -> str:
    t = od.terms
    renewal = f"Q̂·A = {t['renewal_lhs']:.4g} s vs (1+η)·c_upd + R = {t['renewal_rhs']:.4g} s"
    ski = f"rent R = {t['rent']:.4g} s vs β·(1+η)·c_upd = {t['ski_rhs']:.4g} s"
    if go:
        return {"renewal": f"consolidate (renewal): {renewal}", "ski-rental": f"consolidate (ski rental): {ski}",
                "forced": "consolidate (forced every k checks)"}[by]
    if od.cooling:
        return f"wait: backoff after a rejected candidate, retry at n ≥ {t['retry_at_n']} (now {n:g})"
    if gates:
        return "wait: blocked by " + ", ".join(gates)
    if t["A"] <= 0:
        return f"wait: a cartridge has no per-query advantage here (A = {t['A']:.4g} s ≤ 0)"
    return f"wait: the update does not pay yet ({renewal}; {ski})"
