import json

import pytest
import torch

from stmltm_nb.memory.batching import collate, pick_batch, residual_pool, sample_residual
from stmltm_nb.memory.cartridge import Cartridge, compose, kv_bytes_per_token
from stmltm_nb.memory.cartridge_files import CartridgeError
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.questions import Query
from stmltm_nb.memory.stm import STMBuffer
from stmltm_nb.memory.teacher import compute_teacher_targets
from stmltm_nb.memory.training import distill_loss, train_cartridge
from stmltm_nb.models import tiny_llama


def recipe(**kw) -> ConsolidationConfig:
    """A short training recipe for the tiny model: the config's defaults, gold weight 0.5, no residual, retention
    or practice rows."""
    return ConsolidationConfig(**{"gold_weight": 0.5, "residual_prob": 0.0, "retention_frac": 0.0,
                                  "practice_frac": 0.0, **kw})


@pytest.fixture()
def lm(tokenizer):
    return tiny_llama(tokenizer, seed=0)  # fresh per test: PEFT wraps it


@pytest.fixture()
def items(facts):
    return [f.to_item() for f in facts[:4]]


def stm_text(items):
    return "".join(it.text.strip() + "\n" for it in items)


def make_targets(lm, items, facts, **kw):
    qs = [Query(f.id, f.train_questions[0], "template") for f in facts[:4]]
    return compute_teacher_targets(lm, items, qs, chunk_size=2, k=5, max_new_tokens=6, **kw)


def test_init_from_stm_equals_in_context(lm, items):
    stm = STMBuffer(lm)
    stm.extend(items)
    cart = Cartridge.create(lm, p=stm.total_tokens, stm_text=stm_text(items))
    q = "Who invented it?"
    assert (cart.memory().query_logits(q) - stm.query_logits(q)).abs().max() < 1e-5


def test_ltm_plus_residual_equals_stm_of_all_items(lm, items):
    first, rest = items[:2], items[2:]
    stm_first = STMBuffer(lm)
    stm_first.extend(first)
    cart = Cartridge.create(lm, p=stm_first.total_tokens, stm_text=stm_text(first))
    mem = cart.memory(residual=rest)
    full = STMBuffer(lm)
    full.extend(items)
    assert mem.n == 2 and mem.prefix_tokens == cart.p
    assert (mem.query_logits("Q?") - full.query_logits("Q?")).abs().max() < 1e-5


def test_gradients_reach_only_trainable_cartridge_tokens(lm, items, facts):
    cart = Cartridge.create(lm, p=8, stm_text=stm_text(items))
    tt = make_targets(lm, items, facts)
    loss = distill_loss(cart.peft_model, collate(tt, [0, 1], lm.tokenizer.pad_token_id))
    loss.backward()
    enc = cart.encoder
    assert enc.frozen_embedding.grad is None and not enc.frozen_embedding.requires_grad
    assert enc.trainable_embedding.grad is not None and enc.trainable_embedding.grad.abs().sum() > 0
    assert all(p.grad is None for p in lm.model.parameters())
    assert cart.num_trainable() == 7 * enc.trainable_embedding.shape[1]


def test_training_changes_only_trainable_tokens_and_is_deterministic(lm, items, facts, tokenizer):
    base_before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    tt = make_targets(lm, items, facts)
    cart = Cartridge.create(lm, p=8, stm_text=stm_text(items))
    frozen0 = cart.encoder.frozen_embedding.clone()
    train0 = cart.encoder.trainable_embedding.clone()
    r1 = train_cartridge(cart, tt, recipe(steps=4, batch_size=2, lr=1e-2), progress=False)
    assert torch.equal(cart.encoder.frozen_embedding, frozen0)
    assert not torch.equal(cart.encoder.trainable_embedding, train0)
    for k, v in lm.model.state_dict().items():
        assert torch.equal(v, base_before[k]), k
    other = tiny_llama(tokenizer, seed=0)
    cart2 = Cartridge.create(other, p=8, stm_text=stm_text(items))
    r2 = train_cartridge(cart2, tt, recipe(steps=4, batch_size=2, lr=1e-2), progress=False)
    assert r1.losses == r2.losses and len(r1.losses) == 4
    assert torch.equal(cart.encoder.weight, cart2.encoder.weight)


def test_training_lowers_distill_loss(lm, items, facts):
    tt = make_targets(lm, items, facts)
    cart = Cartridge.create(lm, p=8, init="random")
    batch = collate(tt, list(range(len(tt))), lm.tokenizer.pad_token_id)
    before = distill_loss(cart.peft_model, batch).item()
    train_cartridge(cart, tt, recipe(steps=30, batch_size=4, lr=5e-2), progress=False)
    with torch.no_grad():
        after = distill_loss(cart.peft_model, batch).item()
    assert after < before - 0.1


def test_gold_weight_puts_hard_targets_where_the_response_leaves_the_teacher(lm, items, facts):
    tt = make_targets(lm, items, facts)  # a random model never answers: every response is the item's text
    idx, pad = list(range(len(tt))), lm.tokenizer.pad_token_id
    ids, _, rows, cols, tids, tps, wts = collate(tt, idx, pad, gold_weight=1.0, gold_boost=3.0)
    resp = ids[rows, cols + 1]
    assert torch.equal(tids.gather(1, tps.argmax(1, keepdim=True))[:, 0], resp)  # every target points at the text
    raw = collate(tt, idx, pad, gold_weight=0.0, gold_boost=3.0)
    off = raw[4][:, 0] != resp
    assert off.any()
    assert torch.equal(raw[5], collate(tt, idx, pad)[5])  # g = 0: the teacher's distributions untouched
    assert torch.equal(wts == 3.0, (raw[6] == 3.0) | off)  # boosted: the gold answer and the off-path tokens


def test_per_row_losses_match_single_row_batches(lm, items, facts):
    tt = make_targets(lm, items, facts)
    cart = Cartridge.create(lm, p=8, init="random")
    pad = lm.tokenizer.pad_token_id
    with torch.no_grad():
        loss, rows = distill_loss(cart.peft_model, collate(tt, [0, 1, 2], pad), per_row=True)
        alone = [distill_loss(cart.peft_model, collate(tt, [i], pad)).item() for i in (0, 1, 2)]
    assert rows.shape == (3,) and not rows.requires_grad
    assert torch.allclose(rows, torch.tensor(alone), atol=1e-4)
    assert min(alone) - 1e-4 <= loss.item() <= max(alone) + 1e-4  # the batch loss is a weighted mean of them


def test_pick_batch_mines_high_loss_examples():
    gen = torch.Generator().manual_seed(0)
    pool = list(range(10))
    idx, order = pick_batch([], pool, 4, gen)
    assert len(idx) == 4 and len(order) == 6 and sorted(idx + order) == pool  # one shuffled pass
    unseen = torch.full((10,), float("nan"))
    unseen[:9] = 1.0
    idx, _ = pick_batch(order, pool, 4, gen, unseen, hard_frac=0.5)
    assert idx == order[:4]  # an unseen example: no mining yet
    loss = torch.full((10,), 1e-3)
    loss[7] = 50.0
    counts = 0
    for _ in range(50):
        idx, order = pick_batch(order, pool, 4, gen, loss, hard_frac=0.5)
        assert len(idx) == 4
        counts += idx[:2].count(7)
    assert counts >= 45  # the one high-loss example fills a mined slot almost every batch
    with pytest.raises(ValueError, match="hard_frac"):
        recipe(steps=1, hard_frac=1.5)
    with pytest.raises(ValueError, match="hard_frac"):
        pick_batch([], pool, 4, gen, loss, hard_frac=-0.1)
    with pytest.raises(ValueError, match="batch_size"):
        pick_batch([], [], 4, gen)


def test_student_at_init_agrees_with_teacher_top1(lm, items, facts):
    # chunk holds all items and p covers the whole STM: the student at init *is* the teacher
    qs = [Query(f.id, f.train_questions[0], "template") for f in facts[:4]]
    tt = compute_teacher_targets(lm, items, qs, chunk_size=4, k=5, max_new_tokens=6)
    stm = STMBuffer(lm)
    stm.extend(items)
    cart = Cartridge.create(lm, p=stm.total_tokens, stm_text=stm_text(items))
    input_ids, mask, rows, cols, tids, tps, _ = collate(tt, list(range(len(tt))), lm.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = cart.peft_model(input_ids=input_ids, attention_mask=mask).logits
    assert torch.equal(logits[rows, cols].argmax(-1), tids[:, 0])
    assert torch.allclose(tps.sum(-1), torch.ones(len(tps)))


def test_gold_weight_puts_mass_on_gold_tokens(lm, items, facts):
    tt = make_targets(lm, items, facts)
    ex = tt.examples[0]
    resp = torch.tensor(ex.ids[ex.resp_start:])
    top = tt.topk_ids[tt.offsets[0] : tt.offsets[0] + len(resp)]  # a view: make the teacher have said this text
    for r, t in enumerate(resp.tolist()):
        hit = (top[r] == t).nonzero()
        j = int(hit[0]) if len(hit) else 0
        top[r, j], top[r, 0] = top[r, 0].clone(), t
    _, _, _, _, tids, p0, _ = collate(tt, [0], lm.tokenizer.pad_token_id, gold_weight=0.0)
    _, _, _, _, tids1, p1, _ = collate(tt, [0], lm.tokenizer.pad_token_id, gold_weight=1.0)
    gold = torch.tensor(ex.gold_mask, dtype=torch.bool)
    assert gold.any()
    onehot = (tids1 == resp[:, None]).float()
    assert torch.allclose(p1[gold], onehot[gold])
    keep = ~gold & (tids[:, 0] == resp)  # on the teacher's path and not the answer: soft targets stay
    assert keep.any()
    assert torch.allclose(p1[keep], p0[keep])


def test_collate_context_goes_before_the_query_and_keeps_targets(lm, items, facts):
    tt = make_targets(lm, items, facts)
    pad = lm.tokenizer.pad_token_id
    plain = collate(tt, [0, 1], pad, gold_weight=1.0, gold_boost=3.0)
    ctx = collate(tt, [0, 1], pad, gold_weight=1.0, gold_boost=3.0, contexts=[[5, 6, 7], []])
    assert ctx[0][0, :3].tolist() == [5, 6, 7] and ctx[0][0, 3:3 + len(tt.examples[0].ids)].tolist() == tt.examples[0].ids
    assert ctx[0][1].tolist()[: len(tt.examples[1].ids)] == tt.examples[1].ids
    row0 = plain[2] == 0
    assert torch.equal(ctx[3][row0], plain[3][row0] + 3) and torch.equal(ctx[3][~row0], plain[3][~row0])
    for a, b in zip(ctx[4:], plain[4:]):  # top-k ids, target probabilities, weights: unchanged
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="contexts"):
        collate(tt, [0, 1], pad, contexts=[[1]])


@pytest.mark.parametrize("backend", ["prefix", "lora"])
def test_student_sequence_with_residual_is_what_memory_serves(lm, items, facts, backend):
    """What training shows the student (context ids + residual items + query) equals LTM + residual serving."""
    tt = make_targets(lm, items, facts)
    cart = Cartridge.create(lm, p=8, backend=backend, stm_text=stm_text(items), lora_rank=2)
    train_cartridge(cart, tt, recipe(steps=2, batch_size=2, lr=5e-2), progress=False)  # LoRA starts as a no-op
    pool = residual_pool(lm.tokenizer, items)
    extra = pool[1][1] + pool[2][1]
    input_ids, mask, rows, cols, *_ = collate(tt, [0], lm.tokenizer.pad_token_id,
                                              contexts=[cart.student_context_ids() + extra])
    with torch.no_grad():
        student = cart.peft_model(input_ids=input_ids, attention_mask=mask).logits[0, cols[0]]
    served = cart.memory(residual=[items[1], items[2]]).query_logits(tt.examples[0].question)[0, -1]
    assert (student - served).abs().max() < 1e-4


def test_sample_residual_never_picks_the_asked_item(lm, items):
    pool = residual_pool(lm.tokenizer, items)
    gen = torch.Generator().manual_seed(0)
    for n in (1, 2, 3, 5):
        lines = lm.tokenizer.decode(sample_residual(pool, items[0].id, n, gen)).splitlines()
        assert len(lines) == min(n, 3) and len(set(lines)) == len(lines)
        assert set(lines) <= {it.text.strip() for it in items[1:]}
    assert sample_residual(pool[:1], items[0].id, 3, gen) == [] and sample_residual(pool, "x", 0, gen) == []
    a = [sample_residual(pool, "x", 3, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert a[0] == a[1]
    own = items[0].text.strip()
    with_own = [lm.tokenizer.decode(sample_residual(pool, items[0].id, 2, gen, own_prob=1.0)).splitlines()
                for _ in range(20)]
    assert all(own in lines and len(lines) == 2 for lines in with_own)
    assert {lines.index(own) for lines in with_own} == {0, 1}  # at a random position


def test_residual_training_puts_items_before_the_question(lm, items, facts, tokenizer):
    tt = make_targets(lm, items, facts)
    pool = residual_pool(lm.tokenizer, items)
    seen = {}
    for prob in (0.0, 1.0):
        cart = Cartridge.create(tiny_llama(tokenizer, seed=0), p=8, init="random")
        seen[prob] = train_cartridge(cart, tt, recipe(steps=4, batch_size=4, residual_prob=prob, residual_max=3),
                                     residual=pool, progress=False).tokens_seen
    shortest = min(len(ids) for _, ids in pool)
    assert seen[1.0] >= seen[0.0] + 4 * 4 * shortest  # every sequence got at least one residual item
    assert cart.meta["stats"]["residual_prob"] == 1.0
    with pytest.raises(ValueError, match="residual pool"):
        train_cartridge(cart, tt, recipe(steps=1, residual_prob=0.5), progress=False)
    with pytest.raises(ValueError, match="residual_max"):
        recipe(steps=1, residual_prob=0.5, residual_max=0)


def test_teacher_target_cache_is_reused(lm, items, facts, tmp_path, monkeypatch):
    tt1 = make_targets(lm, items, facts, cache_dir=tmp_path)
    assert not tt1.from_cache and len(list(tmp_path.glob("teacher-*.safetensors"))) == 2  # 4 items, chunks of 2

    def no_model(*a, **k):
        raise AssertionError("the teacher ran again")

    monkeypatch.setattr(lm.model, "forward", no_model)
    tt2 = make_targets(lm, items, facts, cache_dir=tmp_path)
    assert tt2.from_cache
    assert torch.equal(tt1.topk_ids, tt2.topk_ids) and torch.equal(tt1.topk_p, tt2.topk_p)
    assert [e.ids for e in tt1.examples] == [e.ids for e in tt2.examples]
    assert tt2.offsets == tt1.offsets and tt2.seconds == pytest.approx(tt1.seconds)


def test_teacher_cache_is_per_chunk_so_replay_pays_only_for_new_items(lm, items, facts, tmp_path):
    """A later consolidation of old + new items reuses the old chunks' targets and runs the teacher on the new."""
    qs = [Query(f.id, f.train_questions[0], "template") for f in facts[:4]]
    kw = dict(chunk_size=1, k=5, max_new_tokens=6, cache_dir=tmp_path)
    first = compute_teacher_targets(lm, items[:2], qs, **kw)
    calls = []
    real_forward = lm.model.forward

    def counting(*a, **k):
        calls.append(1)
        return real_forward(*a, **k)

    lm.model.forward = counting
    try:
        both = compute_teacher_targets(lm, items, qs, **kw)
        n_new = len(calls)
        calls.clear()
        only_new = compute_teacher_targets(lm, items[2:], qs, chunk_size=1, k=5,
                                           max_new_tokens=6)  # no cache: the teacher's cost for the new items
    finally:
        lm.model.forward = real_forward
    assert not both.from_cache and n_new == len(calls) > 0
    assert [e.item_id for e in both.examples] == [it.id for it in items]
    assert torch.equal(both.topk_p[: len(first.topk_p)], first.topk_p)
    assert torch.equal(both.topk_p[len(first.topk_p):], only_new.topk_p)


def test_corrupt_teacher_cache_is_recomputed(lm, items, facts, tmp_path):
    tt1 = make_targets(lm, items, facts, cache_dir=tmp_path)
    f = next(tmp_path.glob("teacher-*.safetensors"))
    f.write_bytes(f.read_bytes()[:50])
    tt2 = make_targets(lm, items, facts, cache_dir=tmp_path)
    assert not tt2.from_cache and torch.equal(tt1.topk_p, tt2.topk_p)


@pytest.mark.parametrize("backend", ["prefix", "lora"])
def test_save_load_round_trip_bit_exact(lm, items, facts, tmp_path, backend):
    cart = Cartridge.create(lm, p=8, backend=backend, stm_text=stm_text(items))
    tt = make_targets(lm, items, facts)
    train_cartridge(cart, tt, recipe(steps=2, batch_size=2), progress=False)
    path = cart.save_pretrained(tmp_path / "c1")
    loaded = Cartridge.from_pretrained(path, lm)
    a, b = cart._state_tensors(), loaded._state_tensors()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.meta["stats"]["steps"] == 2 and loaded.backend == backend
    assert (cart.memory().query_logits("Q?") - loaded.memory().query_logits("Q?")).abs().max() == 0
    with pytest.raises(CartridgeError, match="exists"):
        cart.save_pretrained(path)
    cart.save_pretrained(path, overwrite=True)


def test_lora_does_not_modify_the_shared_base_model(lm, items, facts):
    before = STMBuffer(lm).query_logits("Q?")
    cart = Cartridge.create(lm, backend="lora", lora_rank=2)
    train_cartridge(cart, make_targets(lm, items, facts), recipe(steps=3, batch_size=2, lr=5e-2),
                    progress=False)
    after = STMBuffer(lm).query_logits("Q?")
    assert torch.equal(before, after)
    assert (cart.memory().query_logits("Q?") - before).abs().max() > 0


def test_load_onto_another_model_fails(lm, items, tmp_path, tokenizer):
    path = Cartridge.create(lm, p=8, stm_text=stm_text(items)).save_pretrained(tmp_path / "c")
    other = tiny_llama(tokenizer, seed=1)
    with pytest.raises(CartridgeError, match="another base model"):
        Cartridge.from_pretrained(path, other)


def test_corrupt_or_truncated_files_fail_clearly(lm, items, tmp_path):
    path = Cartridge.create(lm, p=8, stm_text=stm_text(items)).save_pretrained(tmp_path / "c")
    w = path / "adapter_model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    with pytest.raises(CartridgeError, match="checksum"):
        Cartridge.from_pretrained(path, lm)
    meta = json.loads((path / "cartridge.json").read_text())
    meta.pop("weights_sha256")
    (path / "cartridge.json").write_text(json.dumps(meta))
    with pytest.raises(CartridgeError, match="cannot read"):
        Cartridge.from_pretrained(path, lm)
    (path / "cartridge.json").write_text("{trunc")
    with pytest.raises(CartridgeError, match="corrupt"):
        Cartridge.from_pretrained(path, lm)
    with pytest.raises(CartridgeError, match="not a saved cartridge"):
        Cartridge.from_pretrained(tmp_path / "nothing", lm)


def test_compose_two_cartridges(lm, items, tmp_path):
    a = Cartridge.create(lm, p=6, stm_text=stm_text(items[:2])).save_pretrained(tmp_path / "a")
    b = Cartridge.create(lm, p=5, stm_text=stm_text(items[2:])).save_pretrained(tmp_path / "b")
    c = compose([a, b], tmp_path / "ab", lm)
    assert c.p == 11 and c.meta["composed_from"] == ["a", "b"]
    assert c.kv_cache().get_seq_length() == 11
    assert torch.isfinite(c.memory().query_logits("Q?")).all()


@pytest.mark.parametrize("kw, msg", [
    ({"backend": "adapter"}, "backend"), ({"init": "zeros"}, "init"), ({"p": 1}, "p must"),
    ({"p": 4, "num_frozen": 4}, "num_frozen"), ({"init": "stm", "stm_text": "  "}, "stm_text"),
    ({"backend": "lora", "lora_rank": 0}, "lora_rank"),
])
def test_bad_cartridge_arguments(lm, kw, msg):
    with pytest.raises(CartridgeError, match=msg):
        Cartridge.create(lm, **kw)


def test_kv_bytes_per_token_of_smollm2_shape():
    class Cfg:
        num_hidden_layers, num_key_value_heads, head_dim, hidden_size, num_attention_heads = 30, 3, 64, 576, 9

    assert kv_bytes_per_token(Cfg) == 46080  # 45 KiB in fp32


def test_a_cartridge_saved_with_the_older_fingerprint_still_loads(tiny, tmp_path):
    """Cartridges saved before the fingerprint became dtype-independent keep loading on their own model."""
    import json

    from stmltm_nb.memory.cartridge import Cartridge
    from stmltm_nb.models import model_fingerprint

    path = Cartridge.create(tiny, p=4, init="random").save_pretrained(tmp_path / "old")
    meta = json.loads((path / "cartridge.json").read_text())
    meta["base_fingerprint"] = model_fingerprint(tiny, legacy=True)
    (path / "cartridge.json").write_text(json.dumps(meta))
    assert Cartridge.from_pretrained(path, tiny).meta["base_fingerprint"] == model_fingerprint(
        tiny)


def test_length_groups_cut_padding_and_keep_every_row():
    from stmltm_nb.memory.batching import length_groups

    lengths = [40, 41, 42, 90, 95, 60, 61, 40]
    assert length_groups(lengths, 1) == [list(range(8))]
    two = length_groups(lengths, 2, overhead=16)
    assert two == [[0, 1, 2, 7], [3, 4, 5, 6]]
    three = length_groups(lengths, 3, overhead=16)
    assert sorted(j for g in three for j in g) == list(range(8))
    padded = lambda gs: sum(len(g) * max(lengths[j] for j in g) for g in gs)  # noqa: E731
    assert padded(three) < padded(two) < padded([list(range(8))])
    assert length_groups([40] * 4, 3, overhead=16) == [[0, 1, 2, 3]]  # equal lengths: one pass is cheapest
    assert length_groups([40, 44], 2, overhead=16) == [[0, 1]]  # a pass costs more than 4 padded positions
    assert length_groups([40, 64], 2, overhead=16) == [[0], [1]]  # 24 padded positions cost more than a pass
    assert length_groups([], 2) == []
    with pytest.raises(ValueError, match="max_groups"):
        length_groups(lengths, 0)


def test_micro_batches_give_the_whole_batch_gradient(lm, items, facts):
    from stmltm_nb.memory.batching import residual_pool
    from stmltm_nb.memory.training import accumulate_step

    tt = make_targets(lm, items, facts)
    pool = residual_pool(lm.tokenizer, items)
    extra = [[], pool[1][1], pool[0][1] + pool[2][1] + pool[3][1], []]  # rows of very different lengths
    grads, losses, padded = [], [], []
    for mb in (1, 3):
        cart = Cartridge.create(lm, p=8, init="random", seed=0)
        loss, rows, tokens, positions = accumulate_step(cart, tt, recipe(micro_batches=mb), [0, 1, 2, 3], extra)
        grads.append(torch.cat([p.grad.flatten() for p in cart.trainable_parameters()]))
        losses.append((loss, rows, tokens))
        padded.append(positions)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)
    assert losses[0][0] == pytest.approx(losses[1][0], rel=1e-5)
    assert torch.allclose(losses[0][1], losses[1][1], atol=1e-5) and losses[0][2] == losses[1][2]
    assert losses[0][2] <= padded[1] < padded[0]  # fewer padded positions, the same tokens


def test_bfloat16_autocast_step_is_close_to_float32(lm, items, facts):
    from stmltm_nb.memory.training import accumulate_step

    tt = make_targets(lm, items, facts)
    out = {}
    for dtype in ("float32", "bfloat16"):
        cart = Cartridge.create(lm, p=8, init="random", seed=0)
        loss, *_ = accumulate_step(cart, tt, recipe(dtype=dtype), [0, 1, 2, 3], [[]] * 4)
        g = torch.cat([p.grad.flatten() for p in cart.trainable_parameters()])
        out[dtype] = (loss, g, {p.dtype for p in cart.trainable_parameters()})
    assert out["bfloat16"][2] == {torch.float32}  # parameters (and so Adam's state) stay float32
    assert out["bfloat16"][0] == pytest.approx(out["float32"][0], rel=0.05)
    cos = torch.nn.functional.cosine_similarity(out["bfloat16"][1], out["float32"][1], dim=0)
    assert cos > 0.95 and not torch.equal(out["bfloat16"][1], out["float32"][1])  # autocast did change the compute
    with pytest.raises(ValueError, match="dtype"):
        ConsolidationConfig(dtype="float16")
