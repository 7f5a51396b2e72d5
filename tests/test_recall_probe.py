"""The recall probe on the tiny model: a quarter of the recipe's steps (at least warm-up + 1), recall fractions
in [0, 1] on held-out and trained questions, bad input refused before any model work."""

import pytest

from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.metrics.recall_probe import probe_steps, run_recall_probe


def test_probe_steps_are_a_share_of_the_recipe():
    assert probe_steps(ConsolidationConfig(steps=400)) == 100
    assert probe_steps(ConsolidationConfig(steps=8, warmup=5)) == 6  # never shorter than the warm-up + 1
    with pytest.raises(ValueError, match="share"):
        probe_steps(ConsolidationConfig(), share=0.0)


def test_probe_run_measures_recall_of_a_short_consolidation(tiny, facts, tmp_path, monkeypatch):
    import stmltm_nb.metrics.recall_probe as rp

    seen = {}
    real = rp.consolidate

    def spy(*a, **kw):
        seen["steps"] = a[4].steps
        return real(*a, **kw)

    monkeypatch.setattr(rp, "consolidate", spy)
    cfg = ConsolidationConfig(p=8, steps=24, warmup=2, batch_size=4, retention_frac=0.0, practice_frac=0.0,
                              residual_prob=0.0)
    p = run_recall_probe(tiny.model, tiny.tokenizer, facts[:4], cfg, targets_cache=tmp_path / "tt")
    assert seen["steps"] == p.probe_steps == 6 and p.full_steps == 24 and p.n == 4
    assert 0 <= p.q_probe <= 1 and 0 <= p.q_probe_train <= 1 and p.seconds > 0
    assert set(p.to_json()) == {"n", "probe_steps", "full_steps", "q_probe", "q_probe_train", "seconds"}


def test_probe_refuses_bad_input_before_the_model_runs(facts):
    with pytest.raises(ValueError, match="at least one fact"):
        run_recall_probe(None, None, [], ConsolidationConfig())
    from dataclasses import replace

    with pytest.raises(ValueError, match="held-out"):
        run_recall_probe(None, None, [replace(facts[0], heldout_question="")], ConsolidationConfig())
