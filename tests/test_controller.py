import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stmltm_nb.decision.controller import Controller, ControllerConfig
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.stm import STMError

WORKER = Path(__file__).with_name("crash_worker.py")


@pytest.fixture()
def ctl(tiny, facts, tmp_path):
    cfg = ControllerConfig(check_every=4, m_floor=4, retention_tol=100, gamma_reg=1.0, force_every=1)
    return Controller(tiny.model, tiny.tokenizer, tmp_path / "ctl", {f.id: f.train_questions for f in facts[:16]},
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
    assert any(e["event"] in ("commit", "rollback") for e in ev)
    assert ctl.accounted() and len(ctl.items) == 8
    # the tiny random model cannot answer: every item fails its check and stays in residual STM
    commits = [e for e in ev if e["event"] == "commit"]
    if commits:
        assert set(commits[-1]["kept_in_stm"]) == {f.id for f in facts[:8]} - set(commits[-1]["absorbed"])
        assert {it.id for it in ctl.residual()} >= set(commits[-1]["kept_in_stm"])


def _gate_ctl(tiny, facts, root, tau):
    """Every gate but G2 passes (many queries, cheap update, m floor 4): G2 alone decides."""
    from stmltm_nb.decision.switching import CostModel

    cfg = ControllerConfig(check_every=4, m_floor=4, retention_tol=100, gamma_reg=1.0, tau=tau,
                           queries_per_item=1e4, c_upd_prior=1.0, cost=CostModel(0.0, 0.01))
    return Controller(tiny.model, tiny.tokenizer, root, {f.id: f.train_questions for f in facts[:16]},
                      config=cfg, consolidation=ConsolidationConfig(p=8, steps=2, batch_size=4, chunk_size=1, k=5))


@pytest.mark.parametrize("tau", [1e6, 1e-6])
def test_snr_gate_is_measured_online_and_blocks_on_its_own(tiny, facts, tmp_path, tau):
    ctl = _gate_ctl(tiny, facts, tmp_path / "ctl", tau)
    for i, f in enumerate(facts[:4]):
        ev = ctl.ingest(f.to_item(time=float(i)))
    snr = ev["snr_measurement"]
    assert snr["m"] == 4 and snr["snr_m"] > 0 and snr["seconds"] > 0
    g2 = next(g for g in ev["gates"] if g["name"] == "G2 SNR")
    assert g2["measured"] and g2["value"] == pytest.approx(snr["snr_m"]) and g2["threshold"] == tau
    if tau > 1:
        assert ev["blocked_by"] == ["G2 SNR"] and not ev["consolidate"]
        assert ctl.state["version"] == 0 and not any(e["event"] == "consolidate.start" for e in ctl.events())
    else:
        assert ev["consolidate"] and any(e["event"] == "consolidate.start" for e in ctl.events())
    assert ctl.accounted()


def test_rollback_backs_off_until_the_residual_stm_doubles(tiny, facts, tmp_path, monkeypatch):
    ctl = _gate_ctl(tiny, facts, tmp_path / "ctl", 1e-6)
    ctl.cfg.snr_gate = False
    verdict = {"retention_pass": False}
    monkeypatch.setattr(ctl, "_checks", lambda cand, new, rep: {
        "q_cart": 1.0, "holdout_failed": [], "regression_pass": True, **verdict})
    for i, f in enumerate(facts[:4]):
        ev = ctl.ingest(f.to_item(time=float(i)))
    assert ev["consolidate"] and ctl.events()[-1]["event"] == "rollback"
    assert ctl.state["retry_at_n"] == 8 and ctl.state["version"] == 0
    again = Controller(tiny.model, tiny.tokenizer, ctl.root, ctl.templates, config=ctl.cfg, consolidation=ctl.ccfg)
    assert again.state["retry_at_n"] == 8  # the backoff survives a restart
    for i, f in enumerate(facts[4:7]):
        again.ingest(f.to_item(time=10.0 + i), decide_now=False)
    ev = again.check()  # n = 7 < 8: the rule alone would consolidate, the backoff blocks
    assert not ev["consolidate"] and ev["rule_says_consolidate"] and ev["blocked_by"][0] == "backoff after rollback"
    verdict["retention_pass"] = True
    monkeypatch.setattr(again, "_checks", lambda cand, new, rep: {
        "q_cart": 1.0, "holdout_failed": [], "regression_pass": True, **verdict})
    again.ingest(facts[7].to_item(time=20.0), decide_now=False)
    ev = again.check()
    assert ev["consolidate"] and again.state["version"] == 1 and "retry_at_n" not in again.state
    assert again.accounted()


def test_snr_is_not_measured_while_another_gate_blocks(tiny, facts, tmp_path, monkeypatch):
    ctl = _gate_ctl(tiny, facts, tmp_path / "ctl", 1e-6)
    ctl.cfg.m_floor = 100  # G1 blocks
    monkeypatch.setattr(ctl, "measure_snr", lambda: pytest.fail("SNR measured although G1 blocks"))
    for i, f in enumerate(facts[:4]):
        ev = ctl.ingest(f.to_item(time=float(i)))
    assert ev["snr_measurement"] is None and not ev["consolidate"]


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
    partial = ControllerConfig.from_curves({"recall": curves["recall"]}, tau=2.0)
    assert partial.c_upd_prior == ControllerConfig.c_upd_prior and partial.tau == 2.0
    assert partial.recall == recall_model_from(curves)


def test_restart_rebuilds_state_from_disk(ctl, facts, tiny):
    for i, f in enumerate(facts[:4]):
        ctl.ingest(f.to_item(time=float(i)), decide_now=False)
    again = Controller(tiny.model, tiny.tokenizer, ctl.root, ctl.templates, config=ctl.cfg, consolidation=ctl.ccfg)
    assert [it.id for it in again.items] == [f.id for f in facts[:4]]
    assert again.memory.n == 4


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
    from stmltm_nb.memory.stm import STMItem

    with pytest.raises(STMError):
        ctl.ingest(STMItem(text="   ", id="blank"))
    assert len(ctl.items) == 2 and ctl.accounted()


def test_rollback_returns_items_to_stm(ctl, facts, monkeypatch):
    for i, f in enumerate(facts[:4]):
        ctl.ingest(f.to_item(time=float(i)), decide_now=False)
    # pretend every item passes its check so that the version absorbs them
    monkeypatch.setattr(ctl, "_checks", lambda cand, new, rep: {
        "q_cart": 1.0, "holdout_failed": [], "regression_pass": True, "retention_pass": True})
    out = ctl.consolidate()
    assert out["committed"] and ctl.state["version"] == 1 and ctl.residual() == []
    assert ctl.accounted()
    ctl.rollback()
    assert ctl.state["version"] == 0 and len(ctl.residual()) == 4
    with pytest.raises(ValueError, match="nothing to roll back"):
        ctl.rollback()


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
    assert ctl.state["version"] == 0 and len(ctl.residual()) == len(facts)
    if mode == "save":  # the kill came after the weights were written but before the commit record
        assert not (root / "state.json").exists()
    res = ctl.consolidate()  # restart resumes cleanly
    assert "q_cart" in res and ctl.accounted()
    if res["committed"]:
        from stmltm_nb.memory.cartridge import Cartridge

        Cartridge.load(root / "versions" / f"v{ctl.state['version']:04d}", ctl.model, ctl.tokenizer)
    state = json.loads((root / "state.json").read_text()) if (root / "state.json").exists() else {"version": 0}
    assert state["version"] == ctl.state["version"]
