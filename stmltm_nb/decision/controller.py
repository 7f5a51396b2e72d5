"""The streaming controller: ingest items one by one, evaluate the switching rule, consolidate STM → LTM,
check, commit atomically or roll back. Every decision goes to a JSONL event log with all its terms.

On disk (``root/``), crash-safe by construction:

- ``items.jsonl``: append-only log of every ingested item (flushed and fsynced before ``ingest`` returns).
  It is the source of truth: no item is ever deleted from it.
- ``versions/vNNNN/``: immutable cartridge folders (written to a temp folder, then renamed).
- ``state.json``: the commit record, written atomically: current version, which item ids each version
  absorbed, superseded ids. Writing it is the commit point; a crash before it leaves the old state intact.
- ``events.jsonl``: the decision log (one JSON object per line).

Residual STM = logged items − absorbed by the current version − superseded (a newer item with the same key
always wins). On restart the residual STM is rebuilt from the log, so a kill at any point loses nothing.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from stmltm_nb.decision.switching import CostModel, RecallModel, SkiRental, SwitchInputs, decide
from stmltm_nb.io import atomic_write_json
from stmltm_nb.memory.cartridge import Cartridge, CartridgeError
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.consolidation import consolidate
from stmltm_nb.memory.stm import STMBuffer, STMError, STMItem, read_items
from stmltm_nb.metrics.governance import superseded_ids
from stmltm_nb.metrics.recall import answer_found

STATE_FILE = "state.json"
ITEMS_FILE = "items.jsonl"
EVENTS_FILE = "events.jsonl"


@dataclass
class ControllerConfig:
    """Knobs of the streaming rule (defaults documented in notebook 06)."""

    check_every: int = 8  # evaluate the rule every k ingested items
    m_floor: int = 16  # G1 floor: residual items needed before a consolidation
    eta: float = 0.1  # hysteresis on c_upd
    gamma: float = 0.0  # required margin of LTM over STM (error rate)
    gamma_reg: float = 0.1  # allowed recall drop on protected (previously absorbed) items
    retention_tol: float = 0.25  # allowed rise of the general-text NLL, nats/token
    lam: float = 5.0  # seconds per wrong answer
    beta: float = 1.0  # ski-rental factor
    queries_per_item: float = 4.0  # prior for ω (queries per ingested item) until queries are observed
    cost: CostModel = field(default_factory=lambda: CostModel(0.0, 0.001))
    recall: RecallModel = field(default_factory=lambda: RecallModel("hyperbolic", q0=1.0, n50=16.0))
    q_cart_prior: float = 0.9
    c_upd_prior: float = 600.0  # s
    r_cart_prior: float = 0.01  # s/query
    force_every: int | None = None  # consolidate every k checks regardless (for tests/demos)
    tau: float = 1.0  # G2: SNR_m of the residual items' mean gradient must reach τ (notebook 06)
    snr_gate: bool = True  # measure SNR_m online when every other gate passes (costs a teacher pass, reused)
    snr_max_items: int = 64  # per-item gradients computed at most for this many residual items
    backoff: float = 2.0  # after a rollback, retry once the residual STM is this many times larger

    @classmethod
    def from_curves(cls, curves: dict[str, Any], **overrides: Any) -> ControllerConfig:
        """Priors from ``stmltm measure`` output instead of round numbers: c_ctx(n) slope (cached regime), the
        best q_ctx(n) fit, q_cart (LTM recall on trained templates), c_upd and r_cart."""
        from stmltm_nb.decision.curves import ltm_recall, recall_model_from

        kw: dict[str, Any] = {}  # a partial file (a measurement still running) gives the priors it has
        if "cost" in curves:
            kw["cost"] = CostModel(0.0, max(0.0, float(curves["cost"]["fit_cached_linear"]["coef"]["b"])))
        if "recall" in curves:
            kw["recall"] = recall_model_from(curves)
        if "comparison" in curves:
            kw["q_cart_prior"] = ltm_recall(curves)
        if "consolidation" in curves:
            kw["c_upd_prior"] = float(curves["consolidation"]["c_upd_s"])
        if "cartridge" in curves:
            kw["r_cart_prior"] = float(curves["cartridge"]["r_cart_s"])
        kw.update(overrides)
        return cls(**kw)


class Controller:
    """STM → LTM controller over one model. ``templates[item_id]`` gives training questions; ``probes[item_id]``
    gives (question, answer) pairs used by the hold-out and regression checks (never trained on)."""

    def __init__(self, model: Any, tokenizer: Any, root: str | os.PathLike, templates: dict[str, Sequence[str]],
                 probes: dict[str, tuple[str, str]] | None = None, config: ControllerConfig | None = None,
                 consolidation: ConsolidationConfig | None = None, progress: bool = False):
        self.model, self.tokenizer = model, tokenizer
        self.root = Path(root)
        self.templates = dict(templates)
        self.probes = dict(probes or {})
        self.cfg = config or ControllerConfig()
        self.ccfg = consolidation or ConsolidationConfig()
        self.progress = progress
        try:
            (self.root / "versions").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(f"cannot create the controller folder {self.root}: {e}") from e
        self.state = self._read_state()
        self.items: list[STMItem] = self._read_log()
        self.rent = SkiRental(self.cfg.beta)
        self.queries_seen = 0
        self.ingested_since_check = 0
        self.checks = 0
        self.cartridge: Cartridge | None = None
        self.memory: STMBuffer | None = None
        self._load_current()

    # ----- persistence -----------------------------------------------------------------------------------------
    def _read_state(self) -> dict[str, Any]:
        path = self.root / STATE_FILE
        if not path.exists():
            return {"version": 0, "absorbed": {}, "history": [], "measured": {}}
        try:
            st = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is corrupt ({e}); it is written atomically, so this is outside damage. "
                             "Restore it from a backup; items.jsonl still holds every item.") from e
        return st

    def _read_log(self) -> list[STMItem]:
        path = self.root / ITEMS_FILE
        if not path.exists():
            return []
        text = path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):  # a torn last line from a crash mid-append: never acknowledged
            good = text[: text.rfind("\n") + 1]
            path.write_text(good, encoding="utf-8")
        return read_items(path)

    def _append_log(self, item: STMItem) -> None:
        with open(self.root / ITEMS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def event(self, kind: str, **data: Any) -> dict[str, Any]:
        """Append one event to the decision log."""
        rec = {"time": time.time(), "event": kind, "version": self.state["version"], **data}
        with open(self.root / EVENTS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, default=_json_safe, ensure_ascii=False) + "\n")
            f.flush()
        return rec

    def events(self) -> list[dict[str, Any]]:
        path = self.root / EVENTS_FILE
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def _version_dir(self, v: int) -> Path:
        return self.root / "versions" / f"v{v:04d}"

    def _load_current(self) -> None:
        v = self.state["version"]
        self.cartridge = None
        if v:
            try:
                self.cartridge = Cartridge.load(self._version_dir(v), self.model, self.tokenizer)
            except CartridgeError as e:
                raise CartridgeError(f"committed cartridge v{v} cannot be loaded: {e}") from e
        self._rebuild_memory()

    def _rebuild_memory(self) -> None:
        resid = self.residual()
        if self.cartridge is not None:
            self.memory = self.cartridge.memory(residual=resid, allow_duplicates=True)
        else:
            self.memory = STMBuffer(self.model, self.tokenizer, allow_duplicates=True)
            self.memory.extend(resid)

    # ----- views ----------------------------------------------------------------------------------------------
    def absorbed_ids(self) -> set[str]:
        return {i for i, v in self.state["absorbed"].items() if v <= self.state["version"]}

    def residual(self) -> list[STMItem]:
        """Items served from STM: not absorbed by the current cartridge and not superseded."""
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
        from stmltm_nb.memory.stm import validate_item

        validate_item(item)
        self._append_log(item)
        self.items.append(item)
        overridden = [c for c in superseded_ids(self.items) if c in self.absorbed_ids()]
        if item.key and any(it.key == item.key and it.id != item.id for it in self.items):
            self._rebuild_memory()  # a newer value wins: drop the superseded item from STM
            self.event("supersede", item=item.id, key=item.key, overrides_cartridge=overridden)
        else:
            self.memory.append(item)
        self.ingested_since_check += 1
        if decide_now and self.ingested_since_check >= self.cfg.check_every:
            self.ingested_since_check = 0
            return self.check()
        return None

    def answer(self, question: str, max_new_tokens: int = 16) -> str:
        """Serve a query from cartridge + residual STM (counts toward the query rate ω)."""
        self.queries_seen += 1
        return self.memory.answer(question, max_new_tokens)

    def _omega(self) -> float:
        n = max(1, len(self.items))
        return self.queries_seen / n if self.queries_seen else self.cfg.queries_per_item

    def rule_inputs(self) -> SwitchInputs:
        cfg = self.cfg
        meas = self.state.get("measured", {})
        resid = self.residual()
        n = len(resid)
        q_hat = self._omega() * max(1, n)  # queries a cycle as long as the current one serves
        return SwitchInputs(n=n, Q=q_hat, c_upd=float(meas.get("c_upd_s", cfg.c_upd_prior)),
                            r_cart=0.0 if self.cartridge else float(meas.get("r_cart_s", cfg.r_cart_prior)),
                            cost=cfg.cost, recall=cfg.recall, q_cart=float(meas.get("q_cart", cfg.q_cart_prior)),
                            lam=cfg.lam, eta=cfg.eta, gamma=cfg.gamma, m=float(n), m_star=float(cfg.m_floor))

    def check(self) -> dict[str, Any]:
        """Evaluate the rule now; consolidate if it says so. Returns the logged decision event.

        G2 (SNR) is measured only when everything else says "consolidate": it needs the teacher targets of the
        residual items (cached, so the consolidation that follows reuses them) and one gradient per item.
        """
        self.checks += 1
        x = self.rule_inputs()
        dec = decide(x)
        self.rent.observe(dec.terms["A"], self._omega() * self.cfg.check_every)
        forced = bool(self.cfg.force_every) and self.checks % self.cfg.force_every == 0 and x.n >= 1
        retry_at = int(self.state.get("retry_at_n", 0))
        cooling = not forced and x.n < retry_at  # backoff after a rolled-back candidate
        snr: dict[str, Any] | None = None
        if not forced and not cooling and self.cfg.snr_gate and (dec.consolidate or self._rent_ok(dec, x)):
            snr = self.measure_snr()
            if snr.get("snr_m") is not None:
                x = replace(x, snr=float(snr["snr_m"]), tau=self.cfg.tau)
                dec = decide(x)
        rent_ok = self._rent_ok(dec, x) and not cooling
        go = (dec.consolidate and not cooling) or rent_ok or forced
        rule = dec.to_json()
        rule["rule_says_consolidate"] = rule.pop("consolidate")
        if cooling:
            rule["blocked_by"] = ["backoff after rollback", *rule["blocked_by"]]
            rule["explanation"] = (f"wait: backoff after a rolled-back candidate, retry at n ≥ {retry_at} "
                                   f"(now {x.n:g}); rule alone: {rule['explanation']}")
        ev = self.event("decision", consolidate=go, n=x.n, Q_hat=x.Q, rent=self.rent.rent, forced=forced,
                        by="inequality" if dec.consolidate and go else ("rent" if rent_ok else ("forced" if forced else None)),
                        snr_measurement=snr, retry_at_n=retry_at or None, **rule)
        if go:
            self.consolidate()
        return ev

    def _rent_ok(self, dec: Any, x: SwitchInputs) -> bool:
        """Ski rental: accumulated advantage has paid (1+η)·c_upd and no gate other than the inequality blocks."""
        return self.rent.should_consolidate((1 + x.eta) * x.c_upd) and not [
            b for b in dec.blocked_by if b != "inequality"]

    def measure_snr(self) -> dict[str, Any]:
        """G2 online: SNR_m of the mean distillation gradient over the residual items (one gradient per item,
        at the cartridge's initialisation), with B_simple and the seconds it took. ``snr_m`` is None when fewer
        than two residual items have training questions."""
        from stmltm_nb.memory.consolidation import teacher_targets_for, untrained_cartridge
        from stmltm_nb.metrics.measure import per_item_gradient_signal

        t0 = time.perf_counter()
        items = [it for it in self.residual() if self.templates.get(it.id)][: self.cfg.snr_max_items]
        if len(items) < 2:
            return {"snr_m": None, "m": len(items), "seconds": 0.0}
        tt = teacher_targets_for(self.model, self.tokenizer, items, self.templates, self.ccfg)
        sig = per_item_gradient_signal(untrained_cartridge(self.model, self.tokenizer, items, self.ccfg), tt)
        return {"snr_m": sig.snr_m, "snr_1": sig.snr1, "b_simple": sig.b_simple, "m": sig.m,
                "m_needed": sig.m_needed(self.cfg.tau), "seconds": time.perf_counter() - t0}

    # ----- consolidation ------------------------------------------------------------------------------------------
    def consolidate(self) -> dict[str, Any]:
        """Train version v+1 on residual STM + replay of absorbed items; check; commit or roll back."""
        v_old = self.state["version"]
        v_new = v_old + 1
        new_items = self.residual()
        replay = self.absorbed_items()
        snapshot = {it.id for it in new_items}
        self.event("consolidate.start", new_items=sorted(snapshot), replay=len(replay), target_version=v_new)
        run = consolidate(self.model, self.tokenizer, new_items, self.templates, self.ccfg, progress=self.progress,
                          replay=replay)
        cand = run.cartridge
        checks = self._checks(cand, new_items, replay)
        if not checks["regression_pass"] or not checks["retention_pass"]:
            # exponential backoff: the same evidence would fail the same way, so wait until the residual STM
            # has grown by the backoff factor (kept in the commit record, so a restart keeps it too)
            retry = int(math.ceil(self.cfg.backoff * len(new_items)))
            backed_off = {**self.state, "retry_at_n": retry}
            atomic_write_json(self.root / STATE_FILE, backed_off)
            self.state = backed_off
            self.event("rollback", reason="regression" if not checks["regression_pass"] else "retention",
                       checks=checks, c_upd_s=run.seconds["incurred"], retry_at_n=retry)
            return {"committed": False, **checks}
        failed = set(checks["holdout_failed"])
        absorbed = [it.id for it in new_items if it.id not in failed]
        path = self._version_dir(v_new)
        cand.meta["manifest"] = {"parent": v_old, "absorbed": absorbed, "replay": [it.id for it in replay],
                                 "checks": checks, "seconds": run.seconds}
        cand.save(path, overwrite=path.exists())  # an uncommitted leftover of a crashed run is replaced
        new_state = json.loads(json.dumps(self.state))
        new_state["version"] = v_new
        for i in absorbed:
            new_state["absorbed"][i] = v_new
        new_state["history"].append({"version": v_new, "parent": v_old, "absorbed": absorbed,
                                     "kept_in_stm": sorted(failed), "time": time.time()})
        new_state.pop("retry_at_n", None)
        new_state["measured"] = {"c_upd_s": run.seconds["incurred"], "q_cart": checks["q_cart"],
                                 "r_cart_s": new_state.get("measured", {}).get("r_cart_s", self.cfg.r_cart_prior)}
        atomic_write_json(self.root / STATE_FILE, new_state)  # the commit point
        self.state = new_state
        self.rent.reset()
        self.cartridge = cand
        self._rebuild_memory()
        self.event("commit", absorbed=absorbed, kept_in_stm=sorted(failed), checks=checks,
                   c_upd_s=run.seconds["incurred"])
        return {"committed": True, **checks}

    def _checks(self, cand: Cartridge, new_items: list[STMItem], replay: list[STMItem]) -> dict[str, Any]:
        """Per-item check on the new items (their held-out probe, else a training template), a regression
        check on protected items absorbed earlier, and retention of a general text."""
        from stmltm_nb.memory.facts import general_text
        from stmltm_nb.metrics.recall import text_nll

        mem = cand.memory()
        failed, hits = [], 0
        for it in new_items:
            q, a = self.probes.get(it.id) or ((self.templates.get(it.id) or [None])[0], it.answer)
            if not q or not a:
                continue
            ok = answer_found(a, mem.answer(q))
            hits += ok
            if not ok:
                failed.append(it.id)
        checked = max(1, len(new_items) - sum(1 for it in new_items if not (self.probes.get(it.id) or it.answer)))
        old_mem = self.memory
        reg_old = reg_new = 0
        for it in replay:
            q = (self.templates.get(it.id) or [None])[0]
            if not q or not it.answer:
                continue
            reg_old += answer_found(it.answer, old_mem.answer(q))
            reg_new += answer_found(it.answer, mem.answer(q))
        n_reg = max(1, len(replay))
        text = general_text()
        base = STMBuffer(self.model, self.tokenizer)
        ret_base, ret_new = text_nll(base, text), text_nll(mem, text)
        return {"q_cart": hits / checked, "holdout_failed": failed,
                "regression_old": reg_old / n_reg, "regression_new": reg_new / n_reg,
                "regression_pass": (reg_old - reg_new) / n_reg <= self.cfg.gamma_reg,
                "retention_base_nll": ret_base, "retention_new_nll": ret_new,
                "retention_pass": ret_new - ret_base <= self.cfg.retention_tol}

    def rollback(self) -> int:
        """Return to the parent version (a pointer swap); its absorbed items go back to residual STM."""
        v = self.state["version"]
        if v == 0:
            raise ValueError("nothing to roll back: no committed cartridge")
        parent = self.state["history"][-1]["parent"]
        new_state = json.loads(json.dumps(self.state))
        new_state["version"] = parent
        new_state["absorbed"] = {i: ver for i, ver in new_state["absorbed"].items() if ver <= parent}
        new_state["history"].append({"rollback_from": v, "to": parent, "time": time.time()})
        atomic_write_json(self.root / STATE_FILE, new_state)
        self.state = new_state
        self._load_current()
        self.event("rollback", frm=v, to=parent)
        return parent


def _json_safe(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    return str(o)
