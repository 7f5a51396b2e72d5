import json

import pytest
import torch

from stmltm_nb.memory.items import STMCapacityError, STMError, STMFileError, STMItem
from stmltm_nb.memory.stm import STMBuffer
from stmltm_nb.prompts import encode


def cache_snapshot(buf):
    return [(layer.keys.clone(), layer.values.clone()) for layer in buf.cache.layers]


def assert_same_cache(buf, snap):
    assert buf.cache.get_seq_length() == snap[0][0].shape[2]
    for layer, (k, v) in zip(buf.cache.layers, snap):
        assert torch.equal(layer.keys, k) and torch.equal(layer.values, v)


def full_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits


def check_incremental_equals_full(lm, texts, tol):
    buf = STMBuffer(lm)
    for t in texts:
        buf.append(t)
    q = "Where was Ada born?"
    inc = buf.query_logits(q)
    q_ids = encode(lm.tokenizer, buf.fmt.query(q))
    ctx = buf.context_ids()
    full = full_logits(lm.model, ctx + q_ids)[:, len(ctx):]
    assert inc.shape == full.shape
    assert (inc - full).abs().max().item() < tol


def test_incremental_append_equals_full_forward_tiny(tiny, facts):
    check_incremental_equals_full(tiny, [f.text for f in facts[:12]], 1e-4)


@pytest.mark.slow
def test_incremental_append_equals_full_forward_real(real, facts):
    check_incremental_equals_full(real, [f.text for f in facts[:8]], 1e-4)


def test_append_prefills_only_new_tokens(tiny, facts, monkeypatch):
    buf = STMBuffer(tiny)
    buf.extend([f.text for f in facts[:5]])
    seen = []
    orig = buf._forward
    monkeypatch.setattr(buf, "_forward", lambda ids, cache: seen.append(len(ids)) or orig(ids, cache))
    buf.append(facts[5].text)
    assert seen == [len(encode(tiny.tokenizer, buf.fmt.item(facts[5].text)))]
    assert buf.total_tokens == buf.cache.get_seq_length()


def test_token_accounting(tiny, facts):
    buf = STMBuffer(tiny)
    assert buf.n == 0 and buf.n_tokens == 0
    buf.extend([f.text for f in facts[:4]])
    lens = [len(encode(tiny.tokenizer, f.text.strip() + "\n")) for f in facts[:4]]
    assert buf.n == 4 and buf.n_tokens == sum(lens)
    assert buf.b == pytest.approx(sum(lens) / 4)
    assert buf.total_tokens == buf.prefix_tokens + sum(lens) == buf.cache.get_seq_length()


def test_answering_leaves_cache_unchanged(tiny, facts):
    buf = STMBuffer(tiny)
    buf.extend([f.text for f in facts[:3]])
    snap = cache_snapshot(buf)
    buf.answer(facts[0].train_questions[0], max_new_tokens=5)
    buf.answer_nll(facts[0].train_questions[0], facts[0].answer)
    buf.query_logits("anything")
    assert_same_cache(buf, snap)


def test_answer_nll_is_positive_nats(tiny, facts):
    buf = STMBuffer(tiny)
    buf.append(facts[0].text)
    nll = buf.answer_nll(facts[0].train_questions[0], facts[0].answer)
    assert 0 < nll < 30


def test_persistence_round_trip(tiny, facts, tmp_path):
    buf = STMBuffer(tiny)
    for f in facts[:4]:
        buf.append(f.to_item())
    path = buf.save(tmp_path / "stm.jsonl")
    again = STMBuffer.load(path, tiny)
    assert [i.to_json() for i in again.items] == [i.to_json() for i in buf.items]
    assert_same_cache(again, cache_snapshot(buf))


def test_remove_rebuilds_cache_like_a_fresh_buffer(tiny, facts):
    buf = STMBuffer(tiny)
    items = [buf.append(f.to_item()) for f in facts[:4]]
    buf.remove(items[1].id)
    ref = STMBuffer(tiny)
    ref.extend([items[0], items[2], items[3]])
    assert [i.id for i in buf.items] == [items[0].id, items[2].id, items[3].id]
    for a, b in zip(buf.cache.layers, ref.cache.layers):
        assert torch.allclose(a.keys, b.keys, atol=1e-6)
    with pytest.raises(KeyError):
        buf.remove("nope")


@pytest.mark.parametrize("bad", ["", "   \n\t", 42, None, b"bytes", ["a list"]])
def test_bad_items_rejected_and_buffer_unchanged(tiny, facts, bad):
    buf = STMBuffer(tiny)
    buf.append(facts[0].text)
    snap = cache_snapshot(buf)
    with pytest.raises(STMError):
        buf.append(bad)
    assert buf.n == 1
    assert_same_cache(buf, snap)


def test_duplicates_rejected(tiny, facts):
    buf = STMBuffer(tiny)
    buf.append(STMItem(text=facts[0].text, id="a"))
    with pytest.raises(STMError, match="already exists"):
        buf.append(STMItem(text=facts[1].text, id="a"))
    with pytest.raises(STMError, match="duplicate"):
        buf.append(facts[0].text)
    assert buf.n == 1


def test_item_longer_than_window_rejected(tiny, facts):
    buf = STMBuffer(tiny)
    huge = "word " * (tiny.model.config.max_position_embeddings + 10)
    snap = cache_snapshot(buf)
    with pytest.raises(STMCapacityError, match="longer than the usable model window"):
        buf.append(huge)
    assert buf.n == 0
    assert_same_cache(buf, snap)


def test_capacity_error_and_oldest_eviction(tiny, facts):
    buf = STMBuffer(tiny, max_tokens=80)
    with pytest.raises(STMCapacityError, match="STM is full"):
        for f in facts[:20]:
            buf.append(f.text)
    n_full = buf.n
    assert buf.total_tokens <= 80 and n_full >= 1
    ev = STMBuffer(tiny, max_tokens=80, eviction="oldest")
    for f in facts[:20]:
        ev.append(f.text)
    assert ev.items[-1].text == facts[19].text
    assert ev.total_tokens <= 80 == ev.max_tokens
    assert len(ev.evicted) + ev.n == 20
    with pytest.raises(STMError, match="eviction"):
        STMBuffer(tiny, eviction="random")


def test_failed_forward_leaves_buffer_and_cache_unchanged(tiny, facts, monkeypatch):
    buf = STMBuffer(tiny)
    buf.append(facts[0].text)
    snap = cache_snapshot(buf)
    orig = buf._forward

    def boom(ids, cache):
        orig(ids, cache)  # the cache grows, then the step fails
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(buf, "_forward", boom)
    with pytest.raises(RuntimeError):
        buf.append(facts[1].text)
    assert buf.n == 1
    assert_same_cache(buf, snap)


def test_corrupt_jsonl_line_is_named_and_never_overwrites(tiny, facts, tmp_path):
    path = tmp_path / "stm.jsonl"
    good = json.dumps(facts[0].to_item().to_json())
    content = good + "\n{not json\n"
    path.write_text(content)
    with pytest.raises(STMFileError, match="line 2"):
        STMBuffer.load(path, tiny)
    assert path.read_text() == content
    path.write_text(json.dumps({"text": "x", "colour": 1}) + "\n")
    with pytest.raises(STMFileError, match="unknown STM item fields"):
        STMBuffer.load(path, tiny)
    with pytest.raises(STMFileError, match="cannot read"):
        STMBuffer.load(tmp_path / "missing.jsonl", tiny)


def test_context_text_is_explicit_without_hidden_system_prompt(tiny, facts):
    buf = STMBuffer(tiny)
    buf.append(facts[0].text)
    text = buf.context_text("Q?")
    assert "SmolLM" not in text and "Hugging Face" not in text
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert tiny.tokenizer.decode(buf.context_ids()) == buf.context_text()


def reference_nll(model, context_ids, prefix_ids, target_ids):
    """Per-token NLL (nats) of target_ids after context + prefix, from one full forward pass (no cache)."""
    logits = full_logits(model, context_ids + prefix_ids + target_ids)[0].float()
    start = len(context_ids) + len(prefix_ids) - 1
    logp = torch.log_softmax(logits[start : start + len(target_ids)], -1)
    return -logp[torch.arange(len(target_ids)), torch.tensor(target_ids)]


def test_continuation_nll_matches_a_full_forward_pass(tiny, facts):
    buf = STMBuffer(tiny)
    buf.extend([f.text for f in facts[:4]])
    snap = cache_snapshot(buf)
    prefix = encode(tiny.tokenizer, buf.fmt.query(facts[1].train_questions[0]))
    target = encode(tiny.tokenizer, facts[1].answer)
    ref = reference_nll(tiny.model, buf.context_ids(), prefix, target)
    assert buf.continuation_nll(prefix, target) == pytest.approx(float(ref.mean()), abs=1e-4)
    assert buf.continuation_nll(prefix, target, reduction="sum") == pytest.approx(float(ref.sum()), abs=1e-4)
    assert_same_cache(buf, snap)
    for bad in [([], target), (prefix, [])]:
        with pytest.raises(STMError):
            buf.continuation_nll(*bad)
    with pytest.raises(STMError, match="reduction"):
        buf.continuation_nll(prefix, target, reduction="max")


def _old_nll(buf, prefix_ids, target_ids):
    """The token NLL as answer_nll, text_nll and item_code_bits each computed it before they shared one helper."""
    logits = buf.logits_for_ids(prefix_ids + target_ids)[0, len(prefix_ids) - 1 : -1].float()
    return -torch.log_softmax(logits, -1)[torch.arange(len(target_ids)), torch.tensor(target_ids)]


def test_answer_text_and_code_length_nll_are_unchanged(tiny, facts):
    from stmltm_nb.metrics.compression import nats_to_bits
    from stmltm_nb.metrics.measure import item_code_bits
    from stmltm_nb.metrics.recall import RETENTION_QUESTION, text_nll

    buf = STMBuffer(tiny)
    buf.extend([f.text for f in facts[:3]])
    q, a = facts[0].train_questions[0], facts[0].answer
    q_ids = encode(tiny.tokenizer, buf.fmt.query(q))
    assert buf.answer_nll(q, a) == float(_old_nll(buf, q_ids, encode(tiny.tokenizer, a)).mean())
    text = "Rivers flow to the sea. Mountains are tall."
    r_ids = encode(tiny.tokenizer, buf.fmt.query(RETENTION_QUESTION))
    assert text_nll(buf, text) == float(_old_nll(buf, r_ids, encode(tiny.tokenizer, text)).mean())
    items = [facts[5].to_item(), facts[6].to_item()]
    old_bits = []
    for it in items:
        ids = encode(tiny.tokenizer, buf.fmt.item(it.text))
        old_bits.append(nats_to_bits(float(_old_nll(buf, ids[:1], ids[1:]).sum())))
    assert item_code_bits(buf, items) == old_bits


def test_on_top_runs_ids_and_restores_the_cache(tiny, facts):
    buf = STMBuffer(tiny)
    buf.extend([f.text for f in facts[:2]])
    snap = cache_snapshot(buf)
    ids = encode(tiny.tokenizer, buf.fmt.item(facts[2].text))
    with buf.on_top(ids) as (out, cache):
        assert out.logits.shape[1] == len(ids) and cache.get_seq_length() == buf.total_tokens + len(ids)
    assert_same_cache(buf, snap)
    with pytest.raises(RuntimeError, match="inside"), buf.on_top(ids) as (_, cache):
        tiny.model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True)  # grows it further
        raise RuntimeError("inside")
    assert_same_cache(buf, snap)
    with pytest.raises(STMCapacityError, match="window"), buf.on_top([ids[0]] * buf.window):
        pass
    assert_same_cache(buf, snap)


def _questions(facts, n):
    """``n`` questions of different lengths (training and held-out wordings)."""
    qs = [q for f in facts for q in (f.train_questions[0], f.heldout_question)]
    return qs[:n]


def test_answer_many_gives_the_answers_of_one_by_one(tiny, facts):
    """Batched greedy answers equal the one-by-one answers (left-padded queries, masked pads, own positions), with
    a short last batch, and leave the cache unchanged."""
    buf = STMBuffer(tiny)
    buf.extend([f.text for f in facts[:5]])
    snap = cache_snapshot(buf)
    qs = _questions(facts, 7)
    assert len({len(encode(tiny.tokenizer, buf.fmt.query(q))) for q in qs}) > 2  # padding is exercised
    one = [buf.answer(q, max_new_tokens=12) for q in qs]
    assert buf.answer_many(qs, max_new_tokens=12, batch_size=3) == one
    assert buf.answer_many(qs, max_new_tokens=12, batch_size=16) == one
    assert_same_cache(buf, snap)
    with pytest.raises(STMError, match="batch_size"):
        buf.answer_many(qs, batch_size=0)


def test_answer_many_on_a_cartridge_with_residual_notes(tiny, facts):
    from stmltm_nb.memory.cartridge import Cartridge

    cart = Cartridge.create(tiny, p=8, init="random")
    mem = cart.memory(residual=[f.to_item() for f in facts[:3]])
    qs = _questions(facts[3:], 6)
    assert mem.answer_many(qs, max_new_tokens=10, batch_size=4) == [mem.answer(q, max_new_tokens=10) for q in qs]


def test_answer_many_matches_on_the_real_model(real, facts):
    """On the real model answers stop at a newline or the end token, at different lengths in one batch."""
    buf = STMBuffer(real)
    buf.extend([f.text for f in facts[:8]])
    qs = _questions(facts[:8], 12)
    one = [buf.answer(q, max_new_tokens=32) for q in qs]
    assert len({len(a) for a in one}) > 3  # answers of several lengths ended in one batch
    assert buf.answer_many(qs, max_new_tokens=32, batch_size=12) == one
