"""The sections of ``stmltm measure`` (and, at demo size, ``stmltm demo``): each measures one Key-Metrics signal
on a model and returns its JSON-ready part. Sizes are parameters, so both jobs share the code. Times are
wall-clock seconds, losses nats per token, code lengths bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from stmltm_nb.decision.defaults import DEFAULTS
from stmltm_nb.memory.cartridge import Cartridge
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.consolidation import Consolidation, Lesson, RunOptions, consolidate
from stmltm_nb.memory.facts import Fact
from stmltm_nb.memory.teacher import TeacherTargets
from stmltm_nb.metrics import comparison as _C
from stmltm_nb.metrics import measure as M
from stmltm_nb.metrics.stats import fit_all_recall, fit_cost
from stmltm_nb.models import LoadedModel


def recall_fits(pooled: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The recall-decay families fitted to the pooled q_ctx(n) rows by binomial likelihood (``total`` questions
    per size), best (lowest AICc) first, with Akaike weights."""
    fits = fit_all_recall([r["n"] for r in pooled], [r["recall"] for r in pooled], [r["total"] for r in pooled])
    return {"fits": [asdict(f) for f in fits], "best_fit": fits[0].model}


def recall_section(lm: LoadedModel, facts: Sequence[Fact], sizes: Sequence[int], per_position: int,
                   heldout_sizes: Sequence[int] = (), progress: bool = False, min_questions: int = 24,
                   batch_size: int = 1) -> dict[str, Any]:
    """q_ctx(n), L_ctx(n) by position and pooled at the STM sizes ``sizes`` (items), with the fitted families;
    with ``heldout_sizes``, also held-out paraphrases about the middle of the buffer. Every question at a size is
    distinct (at least ``min_questions`` of them where the facts allow). ``batch_size``: questions about one buffer
    answered at once (1: one by one, as the shipped curves were measured; 8 gave equal rows on the demo's sizes, real
    model: ``python benchmarks/ask_batch.py --curve``, so ``stmltm demo`` uses it)."""
    rows = M.recall_curve(lm, facts, sizes, per_position=per_position, progress=progress,
                          min_questions=min_questions, batch_size=batch_size)
    pooled = M.pooled_recall(rows)
    out: dict[str, Any] = {"by_position": rows, "pooled": pooled}
    if heldout_sizes:
        out["heldout"] = M.recall_curve(lm, facts, heldout_sizes, per_position=per_position,
                                        positions=("middle",), kind="heldout", progress=progress,
                                        min_questions=min_questions, batch_size=batch_size)
    return {**out, **recall_fits(pooled), "tokens_per_item_b": pooled[-1]["tokens"] / pooled[-1]["n"]}


def cost_section(lm: LoadedModel, facts: Sequence[Fact], sizes: Sequence[int], repeats: int,
                 progress: bool = False) -> dict[str, Any]:
    """c_ctx(n) in both regimes at ``sizes`` (plus n = 0) and its fits on the excess TTFT(n) − TTFT(0), seconds;
    the quadratic fit needs at least three sizes and is left out with fewer."""
    rows = M.cost_curve(lm, facts, sizes, repeats=repeats, progress=progress)
    base = rows[0]
    ns = [r["n"] for r in rows[1:]]
    exc_c = [r["ttft_cached_s"] - base["ttft_cached_s"] for r in rows[1:]]
    exc_s = [r["ttft_stateless_s"] - base["ttft_stateless_s"] for r in rows[1:]]
    out = {"rows": rows, "note": "excess = TTFT(n) − TTFT(0): the per-query cost attributable to STM",
           "fit_cached_linear": asdict(fit_cost(ns, exc_c)), "fit_stateless_linear": asdict(fit_cost(ns, exc_s))}
    if len(ns) >= 3:
        out["fit_stateless_quadratic"] = asdict(fit_cost(ns, exc_s, quadratic=True))
    return out


def consolidation_section(lm: LoadedModel, facts: Sequence[Fact], cfg: ConsolidationConfig,
                          progress: bool = True, save_to: str | Path | None = None
                          ) -> tuple[dict[str, Any], Consolidation]:
    """Train a cartridge on ``facts`` (saved to ``save_to`` when given). Returns (c_upd in seconds, loss history,
    analytic FLOPs, ...; the run itself)."""
    run = consolidate(lm, Lesson.of_facts(facts, config=cfg), cfg, RunOptions(progress=progress))
    if save_to is not None:
        run.cartridge.save_pretrained(save_to, overwrite=True)
    flops = M.training_flops(lm.model.config, run.targets, cfg.steps, cfg.batch_size, cfg.p)
    return {"config": asdict(cfg), "seconds": run.seconds, "c_upd_s": run.seconds["total"],
            "losses": run.train.losses, "examples": len(run.targets), "flops": flops,
            "student_tokens": run.train.tokens_seen}, run


def signal_section(init: Cartridge, cart: Cartridge, tt: TeacherTargets, m_items: int, b_big: int,
                   repeats: int) -> dict[str, Any]:
    """Gradient SNR and B_simple per item (at init and after training) and by two batch sizes (2 and ``b_big``
    examples, ``repeats`` batches each); m_snr_tau2 is the items needed for SNR_m = 2; ε and δ are G1's
    (:data:`~stmltm_nb.decision.defaults.DEFAULTS`), recorded beside the measurement."""
    sig0 = M.per_item_gradient_signal(init, tt)
    sig1 = M.per_item_gradient_signal(cart, tt)
    two = M.two_batch_noise_scale(init, tt, b_small=2, b_big=b_big, repeats=repeats)
    return {"per_item_at_init": asdict(sig0), "per_item_after_training": asdict(sig1), "two_batch_at_init": two,
            "m_items": m_items, "m_snr_tau2": sig0.m_needed(2.0), "epsilon": DEFAULTS.epsilon,
            "delta": DEFAULTS.delta}


def compression_section(lm: LoadedModel, facts: Sequence[Fact], cart: Cartridge, init_vector: Any,
                        cfg: ConsolidationConfig, progress: bool = True) -> dict[str, Any]:
    """DL(Δφ), G_MDL in bytes and in bits, the items' code lengths with and without the cartridge, and a
    prequential code (a cartridge on the first half codes the second half), all in bits."""
    from stmltm_nb.memory.cartridge import kv_bytes_per_token
    from stmltm_nb.memory.stm import STMBuffer
    from stmltm_nb.metrics.compression import g_mdl_information, g_mdl_storage
    from stmltm_nb.metrics.signal import m_star

    items = [f.to_item() for f in facts]
    dl = M.cartridge_dl(cart, init_vector)
    bits_base = M.item_code_bits(STMBuffer(lm), items)
    bits_cart = M.item_code_bits(cart.memory(), items)
    n_tokens = sum(len(lm.tokenizer(f.text.strip() + "\n", add_special_tokens=False)["input_ids"]) for f in facts)
    g_store = g_mdl_storage(n_tokens, kv_bytes_per_token(lm.model.config), cart.kv_bytes())
    g_info = g_mdl_information(sum(bits_base), dl["bits"], sum(bits_cart))
    half = len(facts) // 2
    short = replace(cfg, steps=max(10, cfg.steps // 3))  # the recipe measured, on a third of its steps
    first = consolidate(lm, Lesson.of_facts(facts[:half], config=short), short, RunOptions(progress=progress))
    preq = sum(bits_base[:half]) + sum(M.item_code_bits(first.cartridge.memory(), items[half:]))
    return {"dl": dl, "stm_tokens": n_tokens, "item_bits_base": bits_base, "item_bits_cartridge": bits_cart,
            "g_mdl_storage": asdict(g_store), "g_mdl_information": asdict(g_info), "prequential_bits": preq,
            "prequential_gain_bits": sum(bits_base) - preq,
            "m_star_occam": m_star(dl["bits"], 0.05, 0.05), "m_star_agnostic": m_star(dl["bits"], 0.05, 0.05, True)}


def retrieval_section(lm: LoadedModel, facts: Sequence[Fact], sizes: Sequence[int], repeats: int,
                      k: int = 4, progress: bool = False) -> dict[str, Any]:
    """c_ret(n) of STM + retrieval (BM25 top-``k``) at ``sizes`` and its linear fit on the excess, s/query."""
    rows = M.retrieval_cost_curve(lm, facts, sizes, k=k, repeats=repeats, progress=progress)
    fit = fit_cost([r["n"] for r in rows], [r["excess_s"] for r in rows])
    return {"k": k, "library": "bm25s", "cost": {"rows": rows, "fit_linear": asdict(fit)}}


def records_section(lm: LoadedModel, facts: Sequence[Fact], residual: Sequence[Fact],
                    cartridges: dict[int, Cartridge] | None, split: str | None, chunk_size: int,
                    progress: bool = False, k: int = 4, modes: Sequence[str] | None = None,
                    batch_size: int = 1) -> list[dict[str, Any]]:
    """Per-question records (:func:`stmltm_nb.metrics.recall.question_records`): with ``cartridges`` the cartridge
    modes, without them ``modes`` (default: every mode that needs no cartridge). Training questions are asked where
    a bar or a ceiling reads them (STM of every fact, the cartridge modes, the residual facts alone, the teacher);
    held-out wordings everywhere. Answer NLL (nats/token) for STM of every fact and the cartridge modes.
    ``batch_size``: questions answered at once (:func:`~stmltm_nb.metrics.recall.ask`)."""
    from stmltm_nb.metrics import comparison as C
    from stmltm_nb.metrics.recall import question_records

    if cartridges:
        modes = [C.LTM, C.SERVED]
    elif modes is None:
        modes = [m for m in C.MODES if m not in (C.LTM, C.SERVED)]
    out: list[dict[str, Any]] = []
    for mode in modes:
        kinds = ("train", "heldout") if mode in TRAIN_ASKED else ("heldout",)
        out += question_records(lm, facts, cartridges, residual, split=split, chunk_size=chunk_size, k=k,
                                modes=[mode], kinds=kinds, progress=progress, with_nll=mode in NLL_ASKED,
                                batch_size=batch_size)
    return out


TRAIN_ASKED = (_C.STM_ALL, _C.TEACHER, _C.LTM, _C.SERVED, _C.RESIDUAL_ONLY)  # training questions asked
NLL_ASKED = (_C.STM_ALL, _C.LTM, _C.SERVED)  # answer NLL recorded


def comparison_from(evaluation: dict[str, list[dict[str, Any]]], split: str | None) -> list[dict[str, Any]]:
    """The comparison table from every part of the per-question records."""
    from stmltm_nb.metrics.comparison import comparison_rows

    return comparison_rows([r for part in evaluation.values() for r in part], split=split)


def comparison_section(lm: LoadedModel, facts: Sequence[Fact], cart: Cartridge, residual: Sequence[Fact],
                       chunk_size: int, progress: bool = False, split: str | None = None,
                       modes: Sequence[str] | None = None, batch_size: int = 1) -> list[dict[str, Any]]:
    """The STM-vs-LTM table (:func:`stmltm_nb.metrics.comparison.comparison_rows`) for one cartridge. ``batch_size``
    > 1 answers that many questions at once where a memory can (the same greedy answers; those rows then carry no
    seconds per query)."""
    from stmltm_nb.metrics.comparison import comparison_rows
    from stmltm_nb.metrics.recall import question_records

    recs = question_records(lm, facts, cart, residual, split=split, chunk_size=chunk_size, modes=modes,
                            progress=progress, batch_size=batch_size)
    return comparison_rows(recs, split=split)


def retention_section(lm: LoadedModel, init: Cartridge, carts: dict[int, Cartridge],
                      residual: Sequence[Fact], passages: Sequence[str] | None = None) -> dict[str, Any]:
    """Retention: NLL (nats/token) of the check passages with no memory, the untrained cartridge (step 0), each
    trained cartridge alone and with the residual STM, paired against no memory (bootstrap over passages)."""
    from stmltm_nb.memory.stm import STMBuffer
    from stmltm_nb.metrics import comparison as C
    from stmltm_nb.metrics.recall import check_passages, retention_nll

    texts = list(passages) if passages is not None else check_passages()
    resid = [f.to_item() for f in residual]
    nll: dict[str, dict[Any, list[float]]] = {C.NO_MEMORY: {None: retention_nll(STMBuffer(lm), texts)},
                                              C.STEP0: {None: retention_nll(init.memory(), texts)}}
    nll[C.LTM] = {s: retention_nll(c.memory(), texts) for s, c in carts.items()}
    nll[C.SERVED] = {s: retention_nll(c.memory(residual=resid), texts) for s, c in carts.items()}
    tokens = sum(len(lm.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return C.retention_rows(nll, tokens)


def governance_section(lm: LoadedModel, facts: Sequence[Fact], n_unrelated: int) -> dict[str, Any]:
    """Contradictions among the shipped facts found by key and by the model (answer NLL rise ≥ 1 nat/token),
    probed on the contradiction pairs plus the first ``n_unrelated`` facts of ``facts``."""
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.memory.items import STMItem
    from stmltm_nb.memory.stm import STMBuffer
    from stmltm_nb.metrics.governance import key_conflicts, model_conflicts

    allf = load_facts(contradictions=True)
    contra = [f for f in allf if f.supersedes]
    pairs = [f for f in allf if any(c.supersedes == f.id for c in contra)] + contra
    kc = key_conflicts([f.to_item(time=i) for i, f in enumerate(allf)])

    def nll(ctx, q, a):
        b = STMBuffer(lm)
        b.extend([STMItem(text=it.text, id=it.id) for it in ctx])
        return b.answer_nll(q, a)

    pool = list({f.id: f for f in pairs + list(facts[:n_unrelated])}.values())  # unique ids, order kept
    probe_items = [f.to_item(time=i) for i, f in enumerate(pool)]
    mc = model_conflicts(probe_items, {f.id: f.train_questions[0] for f in pairs + list(facts)}, nll, threshold=1.0)
    expected = {(c.supersedes, c.id) for c in contra}
    return {"key_conflicts": [asdict(c) for c in kc], "model_conflicts": [asdict(c) for c in mc],
            "model_true_positives": sum((c.older, c.newer) in expected for c in mc),
            "model_false_positives": sum((c.older, c.newer) not in expected for c in mc),
            "contradiction_pairs": len(expected)}


__all__ = ["recall_fits", "recall_section", "cost_section", "consolidation_section", "signal_section",
           "compression_section", "comparison_section", "governance_section", "retrieval_section",
           "records_section", "comparison_from", "retention_section"]
