"""Incremental updates on the tiny model: warm-start from the committed φ exactly, the frozen sink and the base
model untouched, teacher targets only for new items (cache hits counted), the committed cartridge never modified,
and every incompatible warm start a CartridgeError before any teacher pass."""

import hashlib

import pytest
import torch

from stmltm_nb.memory.cartridge import Cartridge
from stmltm_nb.memory.cartridge_files import CartridgeError
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.consolidation import (
    Lesson,
    RunOptions,
    consolidate,
    replay_sample,
    templates_of,
    update,
)

CFG = ConsolidationConfig(p=8, steps=3, update_steps=3, batch_size=4, replay_size=3)


def _digest(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture
def committed(tiny, facts, tmp_path):
    old = facts[:6]
    run = consolidate(tiny, Lesson.of_facts(old), CFG, RunOptions(tmp_path / "tt", progress=False))
    assert run.targets.computed == 6 and run.targets.cache_hits == 0
    return run.cartridge, old


def test_update_warm_starts_from_the_committed_phi_and_changes_only_the_trainable_part(tiny, facts, committed,
                                                                                      tmp_path):
    cart, old = committed
    new = facts[6:10]
    phi0 = cart.delta_vector().clone()
    emb0 = cart.encoder.weight.detach().clone()
    base0 = _digest(tiny.model)
    run = update(tiny, cart, Lesson.of_facts(new, replay=old), CFG, RunOptions(tmp_path / "tt", progress=False))
    assert torch.equal(run.init_vector, phi0)  # started from the committed φ exactly
    assert not torch.equal(run.cartridge.delta_vector(), phi0)  # and trained away from it
    assert torch.equal(cart.delta_vector(), phi0) and torch.equal(cart.encoder.weight.detach(), emb0)  # untouched
    n_frozen = cart.meta["num_frozen"]
    assert torch.equal(run.cartridge.encoder.weight.detach()[:n_frozen], emb0[:n_frozen])  # frozen sink
    assert _digest(tiny.model) == base0  # the base model never trains
    # teacher: only the 4 new items were computed; the 3 replayed ones came from the cache
    assert run.targets.computed == 4 and run.targets.cache_hits == 3
    assert run.cartridge.meta["stats"]["update"] == {"new_items": 4, "replayed": 3, "parent_items": 6}
    assert set(run.cartridge.meta["items"]) == {f.id for f in old + new}
    assert len(run.train.losses) == CFG.update_steps


def test_replay_sample_is_seeded_and_keeps_log_order(facts):
    items = [f.to_item() for f in facts[:10]]
    a, b = replay_sample(items, 4, seed=1), replay_sample(items, 4, seed=1)
    assert [i.id for i in a] == [i.id for i in b] and len(a) == 4
    assert [i.id for i in a] == [i.id for i in items if i.id in {x.id for x in a}]
    assert replay_sample(items[:3], 4) == items[:3]


def test_incompatible_warm_starts_are_refused_before_any_teacher_pass(tiny, facts, committed, tmp_path, monkeypatch):
    from dataclasses import replace

    from stmltm_nb.memory import consolidation
    from stmltm_nb.models import tiny_llama

    cart, old = committed
    monkeypatch.setattr(consolidation, "teacher_targets_for", lambda *a, **k: pytest.fail("teacher ran"))
    lesson, quiet = Lesson([f.to_item() for f in facts[6:8]], templates_of(facts[:8])), RunOptions(progress=False)
    with pytest.raises(CartridgeError, match="p = 8 tokens"):
        update(tiny, cart, lesson, replace(CFG, p=16), quiet)
    with pytest.raises(CartridgeError, match="prefix cartridge"):
        update(tiny, cart, lesson, replace(CFG, backend="lora"), quiet)
    other = tiny_llama(tiny.tokenizer, seed=7)
    with pytest.raises(CartridgeError, match="another base model"):
        update(other, cart, lesson, CFG, quiet)
    folder = cart.save_pretrained(tmp_path / "v1")
    w = folder / "adapter_model.safetensors"
    w.write_bytes(w.read_bytes()[:-10])  # a truncated weights file
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(CartridgeError, match="corrupt or truncated"):
        update(tiny, folder, lesson, CFG, quiet)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_controller_updates_incrementally_and_retrains_fully_as_configured(tiny, facts, tmp_path):
    from stmltm_nb.decision.controller import Controller, ControllerConfig

    cfg = ControllerConfig(check_every=100, snr_gate=False, full_retrain_every=1, gamma_reg=1.0, retention_tol=1e9)
    from stmltm_nb.memory.questions import ItemQuestions

    # the probe has no answer: nothing can pass the held-out check
    questions = {f.id: ItemQuestions(f.train_questions, ("unused?", "")) for f in facts}
    with Controller(tiny, tmp_path / "ctl", questions, config=cfg, consolidation=CFG) as ctl:
        assert ctl.update_mode() == "full"  # nothing served yet
        for f in facts[:4]:
            ctl.ingest(f.to_item())
        ctl.consolidate()
        assert ctl.update_mode() == "full"  # the candidate was rejected: the next one retrains fully
        # a committed full version: then one update, then full again (full_retrain_every=1)
        ctl._set_state(ctl.state.commit(1, ["f-none"], mode="full"))
        ctl.cartridge = Cartridge.create(tiny, p=8, init="random")
        assert ctl.update_mode() == "update" and ctl.update_mode(cfg.update_max_new) == "update"
        assert ctl.update_mode(cfg.update_max_new + 1) == "full"  # more new items than an update is sized for
        ctl._set_state(ctl.state.commit(2, ["f-none2"], mode="update"))
        assert ctl.update_mode() == "full"
        starts = [e for e in ctl.events() if e["event"] == "consolidate.start"]
        assert starts[0]["mode"] == "full"
