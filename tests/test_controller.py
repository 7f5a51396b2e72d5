import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stmltm_nb.decision.controller import Controller, ControllerConfig, FolderBusyError
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.items import STMError
from stmltm_nb.memory.questions import ItemQuestions

WORKER = Path(__file__).with_name("crash_worker.py")
sys.path.insert(0, str(WORKER.parent))
from crash_worker import passing  # noqa: E402


def _reopen(ctl):
    """Restart: close the folder, open a new controller on it with the same settings."""
    ctl.close()
    return Controller(ctl.lm, ctl.root, ctl.questions, config=ctl.cfg, consolidation=ctl.ccfg)


@pytest.fixture()
def ctl(tiny, facts, tmp_path):
    cfg = ControllerConfig(check_every=4, m_floor=4, retention_tol=100, gamma_reg=1.0, force_every=1)
    return Controller(tiny, tmp_path / "ctl", {f.id: ItemQuestions(f.train_questions) for f in facts[:16]},
                      config=cfg, consolidation=ConsolidationConfig(p=8, steps=2, batch_size=4, chunk_size=2, k=5))


def test_stream_logs_every_decision_and_loses_no_item(ctl, facts):
    for i, f in enumerate(facts[:8]):
        ctl.ingest(f.to_item(time=float(i)))
    ev = ctl.events()
    decisions = [e for e in ev if e["event"] == "decision"]
    assert len(decisions) == 2
    for d in decisions:
        assert {"terms", "gates", "blocked_by", "explanation"} <= d.keys()
        assert {"A", "lhs_QA", "rhs_upd", "Q_star"} <= d["terms"].keys()
    assert ctl.accounted() and len(ctl.items) == 8
    # the tiny random model cannot answer: every candidate absorbs nothing and is never committed
    rejected = [e for e in ev if e["event"] == "rollback"]
    assert len(rejected) == 2 and not any(e["event"] == "commit" for e in ev) and ctl.state.version == 0
    for e in rejected:
        c = e["checks"]
        assert e["reason"] == "absorbed nothing" and c["q_cart"] == 0 and c["holdout_passed"] == []
        assert {"regression_old", "regression_ltm", "regression_served", "regression_ltm_pass",
                "regression_served_pass"} <= c.keys()
        for mode in ("base", "ltm", "served"):
            assert c[f"retention_{mode}_nll"] > 0  # nats/token
        assert c["retention_served_nll"] != c["retention_ltm_nll"]  # the residual STM is in the served memory
    assert {it.id for it in ctl.residual()} == {f.id for f in facts[:8]}
    assert ctl.state.measured["q_cart"] == 0.0 and ctl.rule_inputs().q_cart == 0.0  # learned from the failure


def _gate_ctl(tiny, facts, root, tau):
    """Every gate but G2 passes (many queries, cheap update, m floor 4, a perfect predicted cartridge so G1's m*
    is 0): G2 alone decides."""
    from stmltm_nb.decision.switching import CostModel

    cfg = ControllerConfig(check_every=4, m_floor=4, retention_tol=100, gamma_reg=1.0, tau=tau,
                           queries_per_item=1e4, c_upd_prior=1.0, cost=CostModel(0.0, 0.01), q_cart_prior=1.0)
    return Controller(tiny, root, {f.id: ItemQuestions(f.train_questions) for f in facts[:16]},
                      config=cfg, consolidation=ConsolidationConfig(p=8, steps=2, batch_size=4, chunk_size=1, k=5))


@pytest.mark.parametrize("tau", [1e6, 1e-6])
def test_snr_gate_is_measured_online_and_blocks_on_its_own(tiny, facts, tmp_path, tau):
    ctl = _gate_ctl(tiny, facts, tmp_path / "ctl", tau)
    for i, f in enumerate(facts[:4]):
        ev = ctl.ingest(f.to_item(time=float(i)))
    snr = ev["snr_measurement"]
    assert snr["m"] == 4 and snr["snr_m"] > 0 and snr["seconds"] > 0
    assert snr["snr_m_lo"] is None  # 4 items are too few for a bootstrap bound: G2 tests SNR_m itself
    g2 = next(g for g in ev["gates"] if g["name"] == "G2 SNR")
    assert g2["measured"] and g2["value"] == pytest.approx(snr["snr_m"]) and g2["threshold"] == tau
    assert g2["rule"] == "SNR_m ≥ τ" and g2["unit"].startswith("dimensionless")
    g1 = next(g for g in ev["gates"] if g["name"] == "G1 sample size")
    assert (g1["value"], g1["unit"], g1["detail"]["m_star_rule"]) == (4, "items", "ln(1/δ)/KL(q_ctx(n) + γ ‖ q̂_cart(n))")
    if tau > 1:
        assert ev["blocked_by"] == ["G2 SNR"] and not ev["consolidate"]
        assert ctl.state.version == 0 and not any(e["event"] == "consolidate.start" for e in ctl.events())
    else:
        assert ev["consolidate"] and any(e["event"] == "consolidate.start" for e in ctl.events())
    assert ctl.accounted()


@pytest.mark.parametrize("reason,verdict,factor", [
    ("absorbed nothing", {"holdout_passed": [], "q_cart": 0.25}, 1.5),
    ("regression", {"regression_pass": False}, 2.0),
    ("retention", {"retention_pass": False}, 3.0),
])
def test_a_rejected_candidate_backs_off_by_its_reason_and_teaches_the_rule(tiny, facts, tmp_path, monkeypatch,
                                                                            reason, verdict, factor):
    ctl = _gate_ctl(tiny, facts, tmp_path / "ctl", 1e-6)
    ctl.cfg.snr_gate = False
    monkeypatch.setattr(Controller, "_checks", lambda self, cand, new, rep: {**passing(new), **verdict})
    for i, f in enumerate(facts[:4]):
        ev = ctl.ingest(f.to_item(time=float(i)))
    last = ctl.events()[-1]
    assert ev["consolidate"] and last["event"] == "rollback" and last["reason"] == reason
    retry = math.ceil(factor * 4)
    assert last["retry_at_n"] == retry and last["backoff_factor"] == factor and ctl.state.version == 0
    q_cart = verdict.get("q_cart", 1.0)
    assert ctl.state.measured == {"c_upd_s": last["c_upd_s"], "q_cart": q_cart}
    again = _reopen(ctl)  # what was learned survives a restart
    assert again.state.retry_at_n == retry and again.rule.retry_at_n == retry
    x = again.rule_inputs()
    assert (x.q_cart, x.c_upd) == (q_cart, last["c_upd_s"]) != (ctl.cfg.q_cart_prior, ctl.cfg.c_upd_prior)
    again.close()


def test_the_backoff_blocks_until_the_residual_stm_grows(tiny, facts, tmp_path, monkeypatch):
    ctl = _gate_ctl(tiny, facts, tmp_path / "ctl", 1e-6)
    ctl.cfg.snr_gate = False
    verdict = {"retention_pass": False}
    monkeypatch.setattr(Controller, "_checks", lambda self, cand, new, rep: {**passing(new), **verdict})
    for i, f in enumerate(facts[:4]):
        ctl.ingest(f.to_item(time=float(i)))
    assert ctl.state.retry_at_n == 12
    again = _reopen(ctl)
    for i, f in enumerate(facts[4:11]):
        again.ingest(f.to_item(time=10.0 + i), decide_now=False)
    ev = again.check()  # n = 11 < 12: the rule alone would consolidate, the backoff blocks
    assert not ev["consolidate"] and ev["rule_says_consolidate"] and ev["blocked_by"][0] == "backoff after rollback"
    assert "retry at n ≥ 12" in ev["explanation"]
    verdict["retention_pass"] = True
    again.ingest(facts[11].to_item(time=20.0), decide_now=False)
    ev = again.check()
    assert ev["consolidate"] and again.state.version == 1 and "retry_at_n" not in again.state.to_json()
    assert again.rule.retry_at_n == 0 and again.residual() == [] and again.accounted()
    again.close()


def test_snr_is_not_measured_while_another_gate_blocks(tiny, facts, tmp_path, monkeypatch):
    ctl = _gate_ctl(tiny, facts, tmp_path / "ctl", 1e-6)
    ctl.cfg.q_cart_prior = 0.0  # a cartridge predicted worse than STM: no sample size tells it better, G1 blocks
    monkeypatch.setattr(ctl, "measure_snr", lambda: pytest.fail("SNR measured although G1 blocks"))
    for i, f in enumerate(facts[:4]):
        ev = ctl.ingest(f.to_item(time=float(i)))
    assert ev["snr_measurement"] is None and not ev["consolidate"] and "G1 sample size" in ev["blocked_by"]
    g1 = next(g for g in ev["gates"] if g["name"] == "G1 sample size")
    assert g1["threshold"] == math.inf and g1["value"] == 4


def test_controller_config_from_measured_curves():
    from stmltm_nb.decision.curves import load_curves, recall_model_from

    curves = load_curves()
    cfg = ControllerConfig.from_curves(curves, check_every=3)
    assert cfg.check_every == 3
    assert cfg.c_upd_prior == curves["consolidation"]["c_upd_s"]
    assert cfg.r_cart_prior == curves["cartridge"]["r_cart_s"]
    assert cfg.cost.kappa1 == pytest.approx(max(0.0, curves["cost"]["fit_cached_linear"]["coef"]["b"]))
    assert cfg.recall == recall_model_from(curves)
    assert 0 <= cfg.q_cart_prior <= 1
    partial = ControllerConfig.from_curves({"schema_version": 2, "recall": curves["recall"]}, tau=2.0)
    assert partial.c_upd_prior == ControllerConfig.c_upd_prior and partial.tau == 2.0
    assert partial.recall == recall_model_from(curves)


def test_restart_rebuilds_state_from_disk(ctl, facts, tiny):
    for i, f in enumerate(facts[:4]):
        ctl.ingest(f.to_item(time=float(i)), decide_now=False)
    again = _reopen(ctl)
    assert [it.id for it in again.items] == [f.id for f in facts[:4]]
    assert again.memory.n == 4 and again.rule.elapsed == 4


def test_newer_item_supersedes_and_bad_items_are_rejected(ctl, facts):
    from stmltm_nb.memory.facts import load_facts

    allf = load_facts(contradictions=True)
    c = next(f for f in allf if f.supersedes)
    old = next(f for f in allf if f.id == c.supersedes)
    ctl.ingest(old.to_item(time=1.0), decide_now=False)
    ctl.ingest(c.to_item(time=2.0), decide_now=False)
    assert [it.id for it in ctl.residual()] == [c.id]
    assert any(e["event"] == "supersede" for e in ctl.events())
    with pytest.raises(STMError, match="already"):
        ctl.ingest(c.to_item(time=3.0))
    from stmltm_nb.memory.items import STMItem

    with pytest.raises(STMError):
        ctl.ingest(STMItem(text="   ", id="blank"))
    assert len(ctl.items) == 2 and ctl.accounted()


def test_rollback_returns_items_to_stm(ctl, facts, monkeypatch):
    for i, f in enumerate(facts[:4]):
        ctl.ingest(f.to_item(time=float(i)), decide_now=False)
    # pretend every item passes its check so that the version absorbs them
    monkeypatch.setattr(ctl, "_checks", lambda cand, new, rep: passing(new))
    out = ctl.consolidate()
    assert out["committed"] and ctl.state.version == 1 and ctl.residual() == []
    assert ctl.accounted()
    ctl.rollback()
    assert ctl.state.version == 0 and len(ctl.residual()) == 4
    with pytest.raises(ValueError, match="nothing to roll back"):
        ctl.rollback()


def test_three_rollbacks_in_a_row_each_with_a_restart_then_a_commit(ctl, facts, monkeypatch):
    verdict = {}
    monkeypatch.setattr(Controller, "_checks", lambda self, cand, new, rep: {**passing(new), **verdict})
    batches = [facts[0:2], facts[2:4], facts[4:6]]
    for i, batch in enumerate(batches[:2]):
        for f in batch:
            ctl.ingest(f.to_item(time=float(i)), decide_now=False)
        assert ctl.consolidate()["committed"]
    assert ctl.state.version == 2 and {it.id for it in ctl.residual()} == set()
    ids = [{f.id for f in b} for b in batches]
    ctl.rollback()  # 1: the committed v2 back to its parent v1
    ctl = _reopen(ctl)
    assert ctl.state.version == 1 and {it.id for it in ctl.residual()} == ids[1]
    verdict["retention_pass"] = False  # 2: a rejected candidate (v3, never served)
    out = ctl.consolidate()
    assert not out["committed"] and out["reason"] == "retention"
    ctl = _reopen(ctl)
    assert ctl.state.version == 1 and ctl.state.retry_at_n == 6 and {it.id for it in ctl.residual()} == ids[1]
    ctl.rollback()  # 3: v1 back to v0 (the old code raised KeyError here: the last record had no parent)
    ctl = _reopen(ctl)
    assert ctl.state.version == 0 and {it.id for it in ctl.residual()} == ids[0] | ids[1]
    verdict.clear()
    for f in batches[2]:
        ctl.ingest(f.to_item(time=9.0), decide_now=False)
    assert ctl.consolidate()["committed"]
    ctl = _reopen(ctl)
    assert ctl.state.version == 3 and ctl.state.parents[3] == 0  # a fresh number: v1, v2 stay immutable
    assert ctl.absorbed_ids() == ids[0] | ids[1] | ids[2] and ctl.residual() == [] and ctl.accounted()
    assert ctl.cartridge is not None and (ctl.root / "versions" / "v0002").exists()
    kinds = [("rejected" in h, "rollback_from" in h, "version" in h) for h in ctl.state.history]
    assert kinds == [(False, False, True)] * 2 + [(False, True, False), (True, False, False), (False, True, False),
                                                   (False, False, True)]
    ctl.close()


def test_a_controller_from_questions_of_facts_checks_each_item_with_its_probe(tiny, facts, tmp_path):
    """``questions_of(facts)``: every fact is trainable and checked with its held-out probe (the tiny random model
    answers none, so each is asked and fails, none is unchecked); a mapping of bare question lists is refused."""
    from stmltm_nb.memory.questions import questions_of

    cfg = ControllerConfig(check_every=100, snr_gate=False, retention_tol=100, gamma_reg=1.0)
    with pytest.raises(TypeError, match="not ItemQuestions"):
        Controller(tiny, tmp_path / "old", {f.id: f.train_questions for f in facts[:4]}, config=cfg)
    with Controller(tiny, tmp_path / "ctl", questions_of(facts[:16]), config=cfg,
                    consolidation=ConsolidationConfig(p=8, steps=2, batch_size=4, chunk_size=2, k=5)) as ctl:
        for i, f in enumerate(facts[:4]):
            ctl.ingest(f.to_item(time=float(i)))
        ctl.ingest(facts[20].to_item(time=4.0))  # no entry in the mapping: no training question
        assert ctl.rule_inputs().m == 4.0
        res = ctl.consolidate()
        start = next(e for e in ctl.events() if e["event"] == "consolidate.start")
        assert start["new_items"] == sorted(f.id for f in facts[:4])
        assert start["not_trainable"] == {facts[20].id: "no training question"}
        assert res["committed"] is False and res["reason"] == "absorbed nothing"
        assert sorted(res["holdout_failed"]) == sorted(f.id for f in facts[:4]) and res["unchecked"] == []


def test_a_folder_has_one_writer_in_this_process(ctl, facts, tiny):
    ctl.ingest(facts[0].to_item(time=0.0), decide_now=False)
    with pytest.raises(FolderBusyError, match=str(ctl.root)):
        Controller(tiny, ctl.root, ctl.questions)
    ctl.close()
    with pytest.raises(FolderBusyError, match="closed"):
        ctl.ingest(facts[1].to_item(time=1.0), decide_now=False)
    with Controller(tiny, ctl.root, ctl.questions) as again:
        assert [it.id for it in again.items] == [facts[0].id]
    assert not again.store.is_open


def _run_worker(root, mode, kill_after=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, str(WORKER), str(root), mode], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in p.stdout:
        lines.append(line)
        if "INGESTED" in line and kill_after is not None:
            time.sleep(kill_after)  # now inside the teacher pass / training
            p.send_signal(signal.SIGKILL)
            break
    p.wait(timeout=600)
    return p.returncode, "".join(lines)


def _check_recovered(root):
    from crash_worker import make

    ctl, facts = make(root, steps=2)
    assert [it.id for it in ctl.items] == [f.id for f in facts]  # every item present
    assert ctl.accounted()
    return ctl, facts


@pytest.mark.parametrize("mode", ["train", "save"])
def test_sigkill_during_consolidation_loses_nothing_and_resumes(tmp_path, mode):
    sys.path.insert(0, str(WORKER.parent))
    root = tmp_path / "ctl"
    rc, out = _run_worker(root, mode, kill_after=8 if mode == "train" else None)
    assert rc == -signal.SIGKILL, out
    assert "COMMITTED" not in out
    ctl, facts = _check_recovered(root)
    assert ctl.state.version == 0 and len(ctl.residual()) == len(facts)
    if mode == "save":  # the kill came after the weights were written but before the commit record
        assert not (root / "state.json").exists()
    res = ctl.consolidate()  # restart resumes cleanly
    assert "q_cart" in res and ctl.accounted()
    if res["committed"]:
        from stmltm_nb.memory.cartridge import Cartridge

        Cartridge.from_pretrained(root / "versions" / f"v{ctl.state.version:04d}", ctl.lm)
    state = json.loads((root / "state.json").read_text()) if (root / "state.json").exists() else {"version": 0}
    assert state["version"] == ctl.state.version


def test_a_second_process_is_refused_and_the_folder_reopens_after_a_kill(tmp_path):
    root = tmp_path / "ctl"
    p = subprocess.Popen([sys.executable, str(WORKER), str(root), "hold"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    acked, lines = [], []
    try:
        for line in p.stdout:
            lines.append(line)
            if line.startswith("ACK"):
                acked.append(line.split()[1])
            if len(acked) == 5:  # the worker holds the folder, mid-stream
                break
        assert len(acked) == 5, "".join(lines)
        probe = ("import sys; sys.path.insert(0, sys.argv[2]); from crash_worker import make\n"
                 "try:\n    make(sys.argv[1], steps=2)\nexcept Exception as e:\n"
                 "    print(type(e).__name__, e); sys.exit(3)")
        other = subprocess.run([sys.executable, "-c", probe, str(root), str(WORKER.parent)], capture_output=True,
                               text=True, timeout=600)
        assert other.returncode == 3 and "FolderBusyError" in other.stdout and str(root) in other.stdout, other
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
    from crash_worker import make

    ctl, facts = make(root, steps=2)  # the OS dropped the dead writer's lock
    ids = [it.id for it in ctl.items]
    assert ids[: len(acked)] == acked and set(ids) <= {f.id for f in facts} and ctl.accounted()
    ctl.close()


def test_probe_points_feed_the_rule_until_a_candidate_is_measured(tiny, facts, tmp_path, monkeypatch):
    ctl = _gate_ctl(tiny, facts, tmp_path / "ctl", 1e-6)
    ctl.cfg.snr_gate = False
    ctl.cfg.q_cart_points = ((16.0, 1.0), (64.0, 0.95))  # predicted perfect at 4 items: G1's m* is 0
    x = ctl.rule_inputs()
    assert x.q_cart_points == ((16.0, 1.0), (64.0, 0.95)) and x.q_cart_at(64) == pytest.approx(0.95)
    assert x.tau == ctl.cfg.tau  # the configured τ, logged with G2 even before it is measured
    monkeypatch.setattr(Controller, "_checks", lambda self, cand, new, rep: {**passing(new), "retention_pass": False,
                                                                          "q_cart": 0.25})
    for i, f in enumerate(facts[:4]):
        ctl.ingest(f.to_item(time=float(i)))
    assert ctl.events()[-1]["event"] == "rollback"
    x = ctl.rule_inputs()  # the measured held-out recall replaces the prediction
    assert x.q_cart_points == () and x.q_cart == 0.25 and x.q_cart_at(64) == pytest.approx(0.25)
    ctl.close()


def test_a_supersede_event_names_only_its_own_keys_values_in_the_cartridge(ctl, monkeypatch):
    from stmltm_nb.memory.facts import load_facts

    allf = load_facts(contradictions=True)
    pairs = [(next(f for f in allf if f.id == c.supersedes), c) for c in allf if c.supersedes][:2]
    (old1, new1), (old2, new2) = pairs
    monkeypatch.setattr(ctl, "absorbed_ids", lambda: {old1.id})  # old1 sits in the cartridge, old2 in STM
    for i, f in enumerate([old1, old2, new1, new2]):
        ctl.ingest(f.to_item(time=float(i)), decide_now=False)
    ev = {e["item"]: e for e in ctl.events() if e["event"] == "supersede"}
    assert ev[new1.id]["overrides_cartridge"] == [old1.id] and ev[new2.id]["overrides_cartridge"] == []
