"""Retention and practice rows (issue #13): the cartridge must join memory, not replace it. Tiny model."""

import pytest
import torch

from stmltm_nb.memory.batching import residual_pool
from stmltm_nb.memory.cartridge import Cartridge
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.consolidation import Lesson, RunOptions, consolidate, guard_targets, templates_of
from stmltm_nb.memory.facts import retention_passages
from stmltm_nb.memory.questions import Query
from stmltm_nb.memory.stm import STMBuffer
from stmltm_nb.memory.teacher import (
    PROSE_PROMPTS,
    compute_teacher_targets,
    concat_targets,
    prose_targets,
    retention_targets,
)
from stmltm_nb.memory.training import batch_rows, row_pools, train_cartridge
from stmltm_nb.metrics.recall import RETENTION_QUESTION
from stmltm_nb.models import tiny_llama
from stmltm_nb.prompts import encode

PROMPTS = ["Give me three tips for sleeping better.", "How do I make a cup of tea?", "Why do birds sing?"]


@pytest.fixture()
def lm(tokenizer):
    return tiny_llama(tokenizer, seed=0)


@pytest.fixture()
def parts(lm, facts):
    """Fact rows about 4 facts, practice rows about 2 other facts, retention rows on 3 prompts."""
    cart_f, prac_f = facts[:4], facts[10:12]
    fact_q = [Query(f.id, f.train_questions[0], "template") for f in cart_f]
    prac_q = [Query(f.id, q, "practice") for f in prac_f for q in f.train_questions]
    kw = {"k": 5, "max_new_tokens": 6}
    tt_f = compute_teacher_targets(lm, [f.to_item() for f in cart_f], fact_q, 1, **kw)
    tt_p = compute_teacher_targets(lm, [f.to_item() for f in prac_f], prac_q, 1, **kw)
    tt_r = retention_targets(lm, PROMPTS, **kw)
    pool = residual_pool(lm.tokenizer, [f.to_item() for f in cart_f + prac_f])
    return concat_targets([tt_f, tt_r, tt_p]), pool, cart_f, prac_f


def test_retention_rows_are_the_base_models_own_answers_with_no_memory(lm):
    tt = retention_targets(lm, PROMPTS, k=5, max_new_tokens=6)
    assert [e.kind for e in tt.examples] == ["retention"] * 3
    for i, e in enumerate(tt.examples):
        resp = torch.tensor(e.ids[e.resp_start :])
        top1 = tt.topk_ids[tt.offsets[i] : tt.offsets[i] + len(resp), 0]
        assert torch.equal(top1[:-1], resp[:-1])  # greedy: every response token is the teacher's top-1
        assert sum(e.gold_mask) == 0  # no gold answer: never hard-targeted
    with pytest.raises(ValueError, match="retention corpus"):
        retention_targets(lm, ["  ", ""], k=5)


def test_batches_mix_the_row_kinds_as_configured(lm, parts):
    tt, pool, cart_f, prac_f = parts
    cfg = ConsolidationConfig(batch_size=8, retention_frac=0.25, practice_frac=0.25, residual_prob=0.0,
                              residual_max=3)
    assert cfg.row_counts() == (4, 2, 2)
    pools = row_pools(tt, cfg)
    assert len(pools["fact"]) == 4 and len(pools["retention"]) == 3 and len(pools["practice"]) == 4
    gen = torch.Generator().manual_seed(0)
    orders = {k: [] for k in pools}
    own = dict(pool)
    for _ in range(10):
        idx, extra = batch_rows(tt, cfg, pools, orders, pool, torch.full((len(tt),), float("nan")), gen)
        kinds = [tt.examples[i].kind for i in idx]
        assert kinds[:4] == ["template"] * 4 and kinds[4:6] == ["retention"] * 2 and kinds[6:] == ["practice"] * 2
        assert all(e == [] for e in extra[:6])  # no residual in fact rows (residual_prob 0) nor retention rows
        for i, e in zip(idx[6:], extra[6:]):
            mine = own[tt.examples[i].item_id]
            assert any(e[j : j + len(mine)] == mine for j in range(len(e) - len(mine) + 1))  # the fact is in STM
            assert 1 <= len([iid for iid, ids in pool if any(e[j : j + len(ids)] == ids
                                                              for j in range(len(e) - len(ids) + 1))]) <= 3


def test_retention_rows_see_the_batch_stand_ins_only_when_asked(lm, parts):
    """``retention_context="standins"``: a retention row's student sees as many stand-in notes as the batch's fact
    rows (its teacher is still the base model with no memory); by default retention rows see the cartridge alone."""
    tt, pool, *_ = parts
    nan = torch.full((len(tt),), float("nan"))

    def batches(cfg, n=12):
        gen, pools = torch.Generator().manual_seed(0), row_pools(tt, cfg)
        orders = {k: [] for k in pools}
        return [batch_rows(tt, cfg, pools, orders, pool, nan, gen) for _ in range(n)]

    lens = {iid: len(ids) for iid, ids in pool}
    base = dict(batch_size=8, retention_frac=0.25, practice_frac=0.0, residual_prob=1.0, residual_min=2,
                residual_max=3)
    seen = batches(ConsolidationConfig(**base, retention_context="standins"))
    for idx, extra in seen:
        kinds = [tt.examples[i].kind for i in idx]
        assert kinds[-2:] == ["retention"] * 2
        ret = extra[-2:]
        assert all(e for e in ret)  # notes after the cartridge in every retention row
        for e in ret:  # made of whole stand-in notes, 2 or 3 of them
            n_tok = len(e)
            assert any(n_tok == sum(c) for c in _sums([lens[i] for i in lens], 2, 3)), n_tok
    plain = batches(ConsolidationConfig(**base))
    assert all(e == [] for _, extra in plain for e in extra[-2:])
    assert seen[0][0] == plain[0][0] and seen[0][1][:-2] == plain[0][1][:-2]  # the fact rows: the same draw
    with pytest.raises(ValueError, match="retention_context"):
        ConsolidationConfig(retention_context="sometimes")


def _sums(values, lo, hi):
    from itertools import combinations

    return [c for k in range(lo, hi + 1) for c in combinations(values, k)]


def test_training_records_each_row_kind_and_no_share_means_no_rows(lm, parts):
    tt, pool, *_ = parts
    cart = Cartridge.create(lm, p=8, init="random")
    cfg = ConsolidationConfig(steps=3, batch_size=8, retention_frac=0.25, practice_frac=0.25, residual_prob=0.0)
    res = train_cartridge(cart, tt, cfg, residual=pool, progress=False)
    assert {k: len(v) for k, v in res.kind_losses.items()} == {"fact": 3, "retention": 3, "practice": 3}
    assert cart.meta["stats"]["retention_frac"] == 0.25 and cart.meta["stats"]["practice_examples"] == 4
    plain = train_cartridge(Cartridge.create(lm, p=8, init="random"), tt,
                            ConsolidationConfig(steps=2, batch_size=4, residual_prob=0.0, retention_frac=0.0,
                                                practice_frac=0.0), progress=False)
    assert set(plain.kind_losses) == {"fact"}


@pytest.mark.parametrize("kw,field", [({"retention_frac": 1.5}, "retention_frac"),
                                      ({"practice_frac": -0.1}, "practice_frac"),
                                      ({"retention_frac": 0.6, "practice_frac": 0.6}, "retention_frac"),
                                      ({"retention_frac": 0.5, "practice_frac": 0.5}, "no fact rows")])
def test_bad_mixing_ratios_name_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        ConsolidationConfig(**kw)


def test_empty_corpus_or_no_practice_facts_fail_before_any_teacher_pass(lm, facts, monkeypatch, tmp_path):
    def no_model(*a, **k):
        raise AssertionError("the model ran before the inputs were checked")

    monkeypatch.setattr(lm.model, "forward", no_model)
    items = [f.to_item() for f in facts[:2]]
    cfg = ConsolidationConfig(p=8, steps=1, batch_size=8, k=5, retention_frac=0.25, practice_frac=0.25)
    with pytest.raises(ValueError, match="retention corpus is empty"):
        consolidate(lm, Lesson(items, templates_of(facts[:2])), cfg,
                    RunOptions(tmp_path, retention=[], practice=facts[10:12]))
    with pytest.raises(ValueError, match="no practice facts"):
        consolidate(lm, Lesson(items, templates_of(facts[:2])), cfg,
                    RunOptions(tmp_path, retention=PROMPTS, practice=[]))
    both = ConsolidationConfig(p=8, steps=1, batch_size=8, k=5, retention_frac=0.25, retention_corpus="both")
    with pytest.raises(ValueError, match="retention_corpus"):
        consolidate(lm, Lesson(items, templates_of(facts[:2])), both,
                    RunOptions(tmp_path, retention=PROMPTS, practice=facts[10:12]))
    assert list(tmp_path.iterdir()) == []  # nothing computed, nothing written


def test_guard_targets_are_cached_and_skipped_when_not_configured(lm, facts, tmp_path):
    cfg = ConsolidationConfig(k=5, retention_frac=0.25, practice_frac=0.25)
    parts1, items = guard_targets(lm, cfg, tmp_path, practice=facts[10:11], retention=PROMPTS)
    parts2, _ = guard_targets(lm, cfg, tmp_path, practice=facts[10:11], retention=PROMPTS)
    assert [p.from_cache for p in parts2] == [True, True] and [it.id for it in items] == [facts[10].id]
    assert torch.equal(parts1[0].topk_p, parts2[0].topk_p)
    none = ConsolidationConfig(retention_frac=0.0, practice_frac=0.0)
    assert guard_targets(lm, none, tmp_path) == ([], [])


def test_prose_rows_are_the_passage_teacher_forced_under_the_base_model(lm, tmp_path):
    passages = ["Bread is made from flour and water.", "Owls hunt mostly at night."]
    tt = prose_targets(lm, passages, k=5, cache_dir=tmp_path)
    assert [e.kind for e in tt.examples] == ["retention"] * 2 and RETENTION_QUESTION not in PROSE_PROMPTS
    base = STMBuffer(lm)
    for i, (e, text) in enumerate(zip(tt.examples, passages)):
        resp = e.ids[e.resp_start :]
        assert resp[:-1] == encode(lm.tokenizer, text)  # the passage itself, then <|im_end|>
        assert sum(e.gold_mask) == 0  # no token boosted
        logits = base.logits_for_ids(e.ids)[0, e.resp_start - 1 : -1]
        top = torch.topk(logits, 5, dim=-1).indices
        assert torch.equal(tt.topk_ids[tt.offsets[i] : tt.offsets[i] + len(resp)], top)
    from stmltm_nb.memory.batching import collate, off_path

    assert bool(off_path(tt, 0).any())  # teacher-forced prose leaves the teacher's top-1 path...
    *_, tps, wts = collate(tt, [0, 1], 0, gold_weight=1.0, gold_boost=4.0)
    assert torch.equal(tps, tt.topk_p) and bool((wts == 1).all())  # ...but its targets stay soft and unboosted
    again = prose_targets(lm, passages, k=5, cache_dir=tmp_path)
    assert again.cache_hits == 1 and torch.equal(again.topk_p, tt.topk_p)
    with pytest.raises(ValueError, match="passages"):
        prose_targets(lm, ["", "  "], k=5)


@pytest.mark.parametrize("corpus,want", [("prompts", {"prompts"}), ("prose", {"prose"}),
                                         ("both", {"prompts", "prose"})])
def test_retention_corpus_selects_which_rows_are_built(lm, tmp_path, corpus, want, monkeypatch):
    import stmltm_nb.memory.consolidation as cons

    monkeypatch.setattr(cons, "retention_passages", lambda: ["Cats sleep for much of the day."])
    monkeypatch.setattr(cons, "retention_prompts", lambda: PROMPTS[:1])
    cfg = ConsolidationConfig(k=5, retention_frac=0.25, retention_corpus=corpus, practice_frac=0.0)
    parts, items = guard_targets(lm, cfg, tmp_path)
    got = {"prose" if "prose" in e.item_id else "prompts" for part in parts for e in part.examples}
    assert got == want and items == []


def test_the_shipped_prose_is_not_the_retention_check_text():
    from stmltm_nb.memory.facts import general_text

    passages = retention_passages()
    assert len(passages) >= 20
    words, prose = general_text().split(), " ".join(passages)
    shared = [" ".join(words[i : i + 5]) for i in range(len(words) - 4) if " ".join(words[i : i + 5]) in prose]
    assert shared == []  # no five-word run of the check text is trained on
    with pytest.raises(ValueError, match="retention_corpus"):
        ConsolidationConfig(retention_corpus="poems")


def test_recorded_configs_read_back_and_compare_by_recipe():
    from dataclasses import asdict

    old = {k: v for k, v in asdict(ConsolidationConfig(micro_batches=1)).items() if k not in ("micro_batches", "dtype")}
    cfg = ConsolidationConfig.from_record(old)  # a run recorded before these fields existed
    assert cfg.dtype == "float32" and cfg != ConsolidationConfig(micro_batches=1)  # today's defaults filled in
    assert cfg.same_recipe(ConsolidationConfig(micro_batches=1))  # how a step is split does not change the recipe
    assert not cfg.same_recipe(ConsolidationConfig(dtype="bfloat16"))  # the compute dtype does
    assert not cfg.same_recipe(ConsolidationConfig(steps=200))
    with pytest.raises(ValueError, match="not ConsolidationConfig fields"):
        ConsolidationConfig.from_record({**old, "stepz": 3})


def test_shipped_runs_are_the_shipped_recipe():
    """benchmarks/probe.py calibrates on these two records: both must read back as today's recipe, and the tuning
    split holds exactly one run of it (the row the probe names)."""
    import json
    import sys
    from pathlib import Path

    from stmltm_nb.shipped import data_dir

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from probe import RECIPE_ROW

    rows = [json.loads(line) for line in (data_dir() / "ltm_recipe.jsonl").read_text().splitlines() if line]
    shipped = [r for r in rows if ConsolidationConfig.from_record(r["config"]).same_recipe(ConsolidationConfig())]
    assert [r["name"] for r in shipped if r["split"] == "tune"] == [RECIPE_ROW]
    assert {r["split"] for r in shipped} <= {"tune", "report"}  # the default's earlier report row is kept as a record
    assert not ConsolidationConfig.from_record(rows[0]["config"]).same_recipe(ConsolidationConfig())  # another recipe
    curves = json.loads((data_dir() / "measured_curves.json").read_text())
    assert ConsolidationConfig.from_record(curves["consolidation"]["config"]).same_recipe(ConsolidationConfig())


def _ship(folder, files):
    """A shipped data folder holding ``files`` (paths) under teacher_targets/ with their manifest."""
    import hashlib
    import json
    import shutil

    from stmltm_nb.shipped import data_dir

    shutil.copyfile(data_dir() / "facts.jsonl", folder / "facts.jsonl")
    out = folder / "teacher_targets"
    out.mkdir()
    for f in files:
        shutil.copyfile(f, out / f.name)
    manifest = {"model": "test", "files": {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_shipped_targets_are_read_only_with_their_checksum_and_never_for_another_model(lm, tokenizer, tmp_path,
                                                                                       monkeypatch):
    passages = ["Bread is made from flour and water.", "Owls hunt mostly at night."]
    made = tmp_path / "made"
    first = prose_targets(lm, passages, k=5, cache_dir=made)
    assert first.computed == 1
    shipped = _ship(tmp_path, list(made.glob("*.safetensors")))
    monkeypatch.setenv("STMLTM_DATA", str(tmp_path))
    fresh = prose_targets(lm, passages, k=5, cache_dir=tmp_path / "empty")
    assert (fresh.cache_hits, fresh.computed) == (1, 0)  # a fresh machine reads the shipped copy
    assert torch.equal(fresh.topk_ids, first.topk_ids) and torch.equal(fresh.topk_p, first.topk_p)
    other = tiny_llama(tokenizer, seed=1)  # another model: its own names, so it computes
    assert prose_targets(other, passages, k=5, cache_dir=tmp_path / "e2").computed == 1
    assert prose_targets(lm, passages, k=5, cache_dir=None).computed == 1  # no cache: computed
    f = next(shipped.glob("*.safetensors"))
    f.write_bytes(f.read_bytes()[:-1] + b"\x00")  # not the bytes the manifest names: never trusted
    assert prose_targets(lm, passages, k=5, cache_dir=tmp_path / "e3").computed == 1


@pytest.mark.slow
def test_the_shipped_teacher_targets_are_the_default_models(real, tmp_path):
    """data/teacher_targets/ (python -m tools.shipped_targets) holds every guard part the default recipe needs on the
    default model and the first demo's facts' targets, and a fresh teacher pass agrees with it (a practice fact
    recomputed)."""
    import json

    from stmltm_nb.apps.demo import DEMO, demo_recipe
    from stmltm_nb.memory.consolidation import teacher_targets_for
    from stmltm_nb.memory.facts import load_facts, load_practice_facts
    from stmltm_nb.memory.teacher import SHIPPED_MANIFEST, SHIPPED_TARGETS
    from stmltm_nb.models import model_fingerprint
    from stmltm_nb.shipped import data_dir

    manifest = json.loads((data_dir() / SHIPPED_TARGETS / SHIPPED_MANIFEST).read_text())
    assert manifest["model"] == model_fingerprint(real), "rebuild: python -m tools.shipped_targets"
    cfg = ConsolidationConfig()
    parts, _ = guard_targets(real, cfg, tmp_path / "cache")
    assert sum(p.computed for p in parts) == 0, "a guard part is not shipped: python -m tools.shipped_targets"
    demo_facts, demo_cfg = load_facts()[: DEMO.facts], demo_recipe(DEMO.steps)
    demo = teacher_targets_for(real, [f.to_item() for f in demo_facts], templates_of(demo_facts, demo_cfg), demo_cfg,
                               tmp_path / "cache")
    assert (demo.computed, demo.cache_hits) == (0, DEMO.facts), "the demo's facts: python -m tools.shipped_targets"
    first = demo_facts[0]  # one demo fact recomputed by the teacher: the shipped copy agrees with this model
    again_demo = teacher_targets_for(real, [first.to_item()], templates_of([first], demo_cfg), demo_cfg, None)
    assert again_demo.computed == 1
    n = len(again_demo.examples)
    assert [e.ids for e in demo.examples[:n]] == [e.ids for e in again_demo.examples]
    rows = sum(len(e.ids) - e.resp_start for e in again_demo.examples)
    assert torch.allclose(demo.topk_p[:rows], again_demo.topk_p, atol=1e-4)
    f = load_practice_facts()[0]
    queries = [Query(f.id, q, "practice") for q in f.train_questions]
    shipped = compute_teacher_targets(real, [f.to_item()], queries, 1, cfg.k,
                                      cache_dir=tmp_path / "cache")
    again = compute_teacher_targets(real, [f.to_item()], queries, 1, cfg.k, cache_dir=None)
    assert shipped.computed == 0 and again.computed == 1
    assert [e.ids for e in shipped.examples] == [e.ids for e in again.examples]
    assert torch.allclose(shipped.topk_p, again.topk_p, atol=1e-4)
    top1 = shipped.topk_p[:, 0] - shipped.topk_p[:, 1] > 1e-3  # ids compared where the top-1 is not a near tie
    assert torch.equal(shipped.topk_ids[top1, 0], again.topk_ids[top1, 0])


def test_standins_from_the_pool_are_distractors_never_the_items_and_an_overlap_is_refused_first(lm, facts,
                                                                                                monkeypatch):
    import stmltm_nb.memory.consolidation as cons
    from stmltm_nb.memory.consolidation import Lesson, standin_items
    from stmltm_nb.memory.items import STMItem
    from stmltm_nb.memory.study_data import load_distractor_facts

    items = [f.to_item() for f in facts[:3]]
    assert standin_items(items, ConsolidationConfig()) == items  # the measured recipe: the items themselves
    pool = standin_items(items, ConsolidationConfig(standins="pool"))
    assert len(pool) >= 100 and not {it.id for it in pool} & {it.id for it in items}
    d = load_distractor_facts()[0]
    clash = STMItem(text=d.text, id="note-1")  # a note that repeats a distractor: the pool would train on it
    monkeypatch.setattr(cons, "teacher_targets_for", lambda *a, **k: pytest.fail("teacher ran"))
    with pytest.raises(ValueError, match="note-1"):
        cons.consolidate(lm, Lesson([clash], {"note-1": ["What is it?"]}),
                         ConsolidationConfig(p=8, steps=1, standins="pool"))


def test_the_lesson_of_facts_carries_the_configured_study_wordings(facts):
    from stmltm_nb.memory.consolidation import Lesson

    plain = Lesson.of_facts(facts[:2])
    rich = Lesson.of_facts(facts[:2], config=ConsolidationConfig(study_wordings=4, about_rows=1))
    for f in facts[:2]:
        assert list(plain.templates[f.id]) == list(f.train_questions)
        assert list(rich.templates[f.id][:2]) == list(f.train_questions) and len(rich.templates[f.id]) == 7
