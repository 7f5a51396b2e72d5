"""The recall probe on the tiny model: the replica (a quarter of the items, cartridge tokens and steps) and the
first design (a quarter of the steps, at least warm-up + 1), recall fractions in [0, 1] on held-out and trained
questions, bad input refused before any model work."""

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
        seen["steps"] = a[2].steps
        return real(*a, **kw)

    monkeypatch.setattr(rp, "consolidate", spy)
    cfg = ConsolidationConfig(p=8, steps=24, warmup=2, batch_size=4, retention_frac=0.0, practice_frac=0.0,
                              residual_prob=0.0)
    p = run_recall_probe(tiny, facts[:4], cfg, targets_cache=tmp_path / "tt", variant="steps")
    assert seen["steps"] == p.probe_steps == 6 and p.full_steps == 24 and p.n == p.probe_items == 4
    assert 0 <= p.q_probe <= 1 and 0 <= p.q_probe_train <= 1 and p.seconds > 0
    assert set(p.to_json()) == {"n", "probe_items", "probe_p", "probe_steps", "full_steps", "q_probe",
                                "q_probe_train", "seconds", "variant"}


def test_probe_refuses_bad_input_before_the_model_runs(facts):
    with pytest.raises(ValueError, match="at least one fact"):
        run_recall_probe(None, [], ConsolidationConfig())
    from dataclasses import replace

    with pytest.raises(ValueError, match="held-out"):
        run_recall_probe(None, [replace(facts[0], heldout_question="")], ConsolidationConfig())


def test_replica_probe_scales_items_tokens_and_steps_alike():
    from stmltm_nb.metrics.recall_probe import probe_plan

    cfg = ConsolidationConfig()  # p = 128, 400 steps
    assert [(m, c.p, c.steps) for m, c in (probe_plan(n, cfg, variant="replica") for n in (64, 32, 16, 8))] == \
        [(16, 32, 100), (8, 32, 100), (8, 64, 200), (8, 128, 400)]  # per item: same tokens, same exposures
    m, c = probe_plan(64, cfg)  # the shipped design: all items, a quarter of the steps
    assert (m, c.p, c.steps) == (64, 128, 100)
    m, c = probe_plan(64, cfg, variant="teacher")
    assert (m, c.p, c.steps) == (64, 128, 0)  # nothing trained
    for variant in ("steps", "replica", "teacher"):
        assert probe_plan(64, cfg, share=1.0, variant=variant) == (64, cfg)  # share 1: the full run itself
    with pytest.raises(ValueError, match="variant"):
        probe_plan(64, cfg, variant="short")


def test_probe_sample_is_seeded_and_keeps_order(facts):
    from stmltm_nb.metrics.recall_probe import probe_sample

    a, b = probe_sample(facts[:64], 16, seed=0), probe_sample(facts[:64], 16, seed=0)
    assert a == b and len(a) == 16 and len({f.id for f in a}) == 16
    order = [f.id for f in facts[:64]]
    assert [order.index(f.id) for f in a] == sorted(order.index(f.id) for f in a)
    assert probe_sample(facts[:64], 16, seed=1) != a
    assert probe_sample(facts[:4], 8) == facts[:4]


def test_replica_probe_trains_a_sample_with_a_smaller_cartridge(tiny, facts, tmp_path, monkeypatch):
    import stmltm_nb.metrics.recall_probe as rp

    seen = {}
    real = rp.consolidate

    def spy(lm, lesson, cfg, *a, **kw):
        seen.update(items=[it.id for it in lesson.items], p=cfg.p, steps=cfg.steps)
        return real(lm, lesson, cfg, *a, **kw)

    monkeypatch.setattr(rp, "consolidate", spy)
    monkeypatch.setattr(rp, "PROBE_MIN_ITEMS", 2)
    cfg = ConsolidationConfig(p=16, steps=40, warmup=2, batch_size=4, retention_frac=0.0, practice_frac=0.0,
                              residual_prob=0.0)
    p = run_recall_probe(tiny, facts[:8], cfg, targets_cache=tmp_path / "tt",
                         variant="replica")
    assert p.n == 8 and p.probe_items == len(seen["items"]) == 2 and p.probe_p == seen["p"] == 4
    assert p.probe_steps == seen["steps"] == 10 and p.variant == "replica"
    assert set(seen["items"]) <= {f.id for f in facts[:8]}
    assert 0 <= p.q_probe <= 1 and 0 <= p.q_probe_train <= 1


def test_teacher_probe_trains_nothing_and_asks_each_fact_alone(tiny, facts, monkeypatch):
    from types import SimpleNamespace

    import stmltm_nb.metrics.recall_probe as rp

    monkeypatch.setattr(rp, "consolidate", lambda *a, **k: pytest.fail("the teacher probe must not train"))
    known = {("heldout", facts[0].id): 1.0, ("heldout", facts[1].id): 0.0, ("heldout", facts[2].id): 1.0,
             ("train", facts[0].id): 0.0, ("train", facts[1].id): 0.0, ("train", facts[2].id): 1.0}
    seen = []

    def fake_recall(buf, asked, kind, **kw):
        seen.append(([it.text for it in buf.items], [f.id for f in asked]))
        return SimpleNamespace(recall=known[kind, asked[0].id])

    monkeypatch.setattr(rp, "evaluate_recall", fake_recall)
    p = run_recall_probe(tiny, facts[:3], ConsolidationConfig(), variant="teacher")
    assert (p.n, p.probe_items, p.probe_steps, p.variant) == (3, 3, 0, "teacher")
    assert p.q_probe == pytest.approx(2 / 3) and p.q_probe_train == pytest.approx(1 / 3)
    assert all(len(ctx) == 1 and len(asked) == 1 for ctx, asked in seen)  # each fact alone in context, asked alone
