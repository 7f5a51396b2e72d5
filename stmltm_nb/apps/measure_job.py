"""``stmltm measure``: every Key-Metrics signal on one model, saved as one JSON file the notebooks read.

Sections of the JSON (units in the key names or below):
``recall`` (q_ctx(n), L_ctx(n) by position and pooled, with fits), ``cost`` (c_ctx(n) in both regimes, fits),
``consolidation`` (c_upd, FLOPs, loss history, probe prediction), ``cartridge`` (r_cart, KV bytes),
``signal`` (SNR, B_simple both estimators, m*), ``compression`` (DL(Δφ), G_MDL in bytes and bits,
prequential code), ``comparison`` (the STM-vs-LTM table), ``governance`` (contradictions found).
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stmltm_nb.io import atomic_write_json


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _clean(x: Any) -> Any:
    """Make a structure JSON-safe: NaN/inf become None; numpy scalars become Python numbers."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        try:
            x = x.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def run_measurements(model_name: str = "default", fast: bool = False, n_facts: int = 64,
                     out: str | Path | None = None, progress: bool = True, resume: bool = False) -> dict[str, Any]:
    """Measure everything and return the JSON-ready dict (written to ``out`` when given).

    Partial results are written after every section; with ``resume=True`` sections already present in ``out``
    are kept and skipped (the trained cartridge is reloaded from the cache folder).
    """
    import json

    import torch

    from stmltm_nb.env import machine
    from stmltm_nb.memory.cartridge import Cartridge, kv_bytes_per_token
    from stmltm_nb.memory.config import ConsolidationConfig
    from stmltm_nb.memory.consolidation import consolidate, templates_of
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.memory.stm import STMBuffer, STMItem
    from stmltm_nb.metrics import measure as M
    from stmltm_nb.metrics.compression import g_mdl_information, g_mdl_storage
    from stmltm_nb.metrics.governance import key_conflicts, model_conflicts
    from stmltm_nb.metrics.probe import probe_prediction
    from stmltm_nb.metrics.recall import compare_memories
    from stmltm_nb.metrics.signal import m_star
    from stmltm_nb.metrics.stats import fit_all_recall, fit_cost
    from stmltm_nb.models import cache_dir, load_model

    torch.manual_seed(0)
    lm = load_model(model_name)
    model, tok = lm.model, lm.tokenizer
    facts = load_facts()
    n_facts = min(n_facts, 16) if fast else n_facts
    train_facts, residual = facts[:n_facts], facts[n_facts : n_facts + (4 if fast else 8)]
    items = [f.to_item() for f in train_facts]
    res: dict[str, Any] = {}
    if resume and out is not None and Path(out).exists():
        res = json.loads(Path(out).read_text())
        _log(f"resuming with sections {sorted(k for k, v in res.items() if isinstance(v, dict))}")
    res.update({"model": lm.name, "fast": fast, "n_facts": n_facts, "created": _dt.date.today().isoformat(),
                "machine": machine()})
    cfg = ConsolidationConfig(steps=30 if fast else ConsolidationConfig.steps,
                              batch_size=8 if fast else ConsolidationConfig.batch_size)
    cart_dir = Path(cache_dir()) / ("measure-cartridge-fast" if fast else "measure-cartridge")

    def section(name: str, fn) -> None:
        if name in res:
            return
        _log(name)
        t0 = time.perf_counter()
        res[name] = fn()
        res.setdefault("section_seconds", {})[name] = time.perf_counter() - t0
        if out is not None:
            atomic_write_json(out, _clean(res))

    def recall():
        sizes = [1, 4, 16] if fast else [1, 2, 4, 8, 16, 32, 64, 128]
        rows = M.recall_curve(model, tok, facts, sizes, per_position=2 if fast else 4)
        pooled = M.pooled_recall(rows)
        fits = fit_all_recall([r["n"] for r in pooled], [r["recall"] for r in pooled])
        held = M.recall_curve(model, tok, facts, sizes if fast else sizes[::2], per_position=2 if fast else 4,
                              positions=("middle",), kind="heldout")
        return {"by_position": rows, "pooled": pooled, "heldout": held, "fits": [asdict(f) for f in fits],
                "best_fit": fits[0].model, "tokens_per_item_b": pooled[-1]["tokens"] / pooled[-1]["n"]}

    def cost():
        csizes = [1, 4, 16] if fast else [1, 4, 16, 64, 128, 200]
        crow = M.cost_curve(model, tok, facts, csizes, repeats=2 if fast else 3)
        base = crow[0]
        ns = [r["n"] for r in crow[1:]]
        exc_c = [r["ttft_cached_s"] - base["ttft_cached_s"] for r in crow[1:]]
        exc_s = [r["ttft_stateless_s"] - base["ttft_stateless_s"] for r in crow[1:]]
        return {"rows": crow, "note": "excess = TTFT(n) − TTFT(0): the per-query cost attributable to STM",
                "fit_cached_linear": asdict(fit_cost(ns, exc_c)), "fit_stateless_linear": asdict(fit_cost(ns, exc_s)),
                "fit_stateless_quadratic": asdict(fit_cost(ns, exc_s, quadratic=True))}

    state: dict[str, Any] = {}

    def run_consolidation():
        run = consolidate(model, tok, items, templates_of(train_facts), cfg, progress=progress)
        run.cartridge.save(cart_dir, overwrite=True)
        state["run"] = run
        flops = M.training_flops(model.config, run.targets, cfg.steps, cfg.batch_size, cfg.p)
        probe = probe_prediction(run.train.losses, probe_steps=max(6, cfg.steps // 4))
        return {"config": asdict(cfg), "seconds": run.seconds, "c_upd_s": run.seconds["total"],
                "losses": run.train.losses, "examples": len(run.targets), "flops": flops, "probe": probe,
                "student_tokens": run.train.tokens_seen}

    section("recall", recall)
    section("cost", cost)
    section("consolidation", run_consolidation)
    if "run" in state:
        run = state["run"]
        cart, tt, init_vec = run.cartridge, run.targets, run.init_vector
    else:  # resumed: reload the trained cartridge and the (cached) teacher targets
        run = consolidate(model, tok, items, templates_of(train_facts), ConsolidationConfig(**{
            **asdict(cfg), "steps": 0}), progress=False)
        cart, tt, init_vec = Cartridge.load(cart_dir, model, tok), run.targets, run.init_vector
    init = Cartridge.create(model, tok, p=cfg.p, stm_text="".join(it.text.strip() + "\n" for it in items))

    def signal():
        sig0 = M.per_item_gradient_signal(init, tt)
        sig1 = M.per_item_gradient_signal(cart, tt)
        two = M.two_batch_noise_scale(init, tt, b_small=2, b_big=8 if fast else 16, repeats=2 if fast else 4)
        return {"per_item_at_init": asdict(sig0), "per_item_after_training": asdict(sig1), "two_batch_at_init": two,
                "m_items": n_facts, "m_snr_tau2": sig0.m_needed(2.0), "epsilon": 0.05, "delta": 0.05}

    def cartridge():
        return M.cartridge_overhead(cart, repeats=2 if fast else 5)

    def compression():
        dl = M.cartridge_dl(cart, init_vec)
        bits_base = M.item_code_bits(STMBuffer(model, tok), items)
        bits_cart = M.item_code_bits(cart.memory(), items)
        n_tokens = sum(len(tok(f.text.strip() + "\n", add_special_tokens=False)["input_ids"]) for f in train_facts)
        g_store = g_mdl_storage(n_tokens, kv_bytes_per_token(model.config), cart.kv_bytes())
        g_info = g_mdl_information(sum(bits_base), dl["bits"], sum(bits_cart))
        half = n_facts // 2
        first = consolidate(model, tok, items[:half], templates_of(train_facts[:half]),
                            ConsolidationConfig(steps=max(10, cfg.steps // 3), batch_size=cfg.batch_size),
                            progress=progress)
        preq = sum(bits_base[:half]) + sum(M.item_code_bits(first.cartridge.memory(), items[half:]))
        return {"dl": dl, "stm_tokens": n_tokens, "item_bits_base": bits_base, "item_bits_cartridge": bits_cart,
                "g_mdl_storage": asdict(g_store), "g_mdl_information": asdict(g_info), "prequential_bits": preq,
                "prequential_gain_bits": sum(bits_base) - preq,
                "m_star_occam": m_star(dl["bits"], 0.05, 0.05), "m_star_agnostic": m_star(dl["bits"], 0.05, 0.05, True)}

    def comparison():
        table = compare_memories(model, tok, train_facts, cart, residual=residual, chunk_size=cfg.chunk_size)
        return table.to_dict(orient="records")

    def governance():
        allf = load_facts(contradictions=True)
        contra = [f for f in allf if f.supersedes]
        pairs = [f for f in allf if any(c.supersedes == f.id for c in contra)] + contra
        kc = key_conflicts([f.to_item(time=i) for i, f in enumerate(allf)])

        def nll(ctx, q, a):
            b = STMBuffer(model, tok)
            b.extend([STMItem(text=it.text, id=it.id) for it in ctx])
            return b.answer_nll(q, a)

        pool = list({f.id: f for f in pairs + facts[: 8 if fast else 24]}.values())  # unique ids, order kept
        probe_items = [f.to_item(time=i) for i, f in enumerate(pool)]
        mc = model_conflicts(probe_items, {f.id: f.train_questions[0] for f in pairs + facts}, nll, threshold=1.0)
        expected = {(c.supersedes, c.id) for c in contra}
        return {"key_conflicts": [asdict(c) for c in kc], "model_conflicts": [asdict(c) for c in mc],
                "model_true_positives": sum((c.older, c.newer) in expected for c in mc),
                "model_false_positives": sum((c.older, c.newer) not in expected for c in mc),
                "contradiction_pairs": len(expected)}

    section("signal", signal)
    section("cartridge", cartridge)
    section("compression", compression)
    section("comparison", comparison)
    section("governance", governance)
    pooled = res["recall"]["pooled"]  # refit (cheap) so that fitting fixes apply to resumed measurements
    fits = fit_all_recall([r["n"] for r in pooled], [r["recall"] for r in pooled])
    res["recall"].update({"fits": [asdict(f) for f in fits], "best_fit": fits[0].model})
    cons = res["consolidation"]
    cons["probe"] = probe_prediction(cons["losses"], probe_steps=max(6, cfg.steps // 4))
    res["signal"].update({"m_star_occam": res["compression"]["m_star_occam"],
                          "m_star_agnostic": res["compression"]["m_star_agnostic"]})
    res["total_seconds"] = sum(res.get("section_seconds", {}).values())
    res = _clean(res)
    if out is not None:
        atomic_write_json(out, res)
        _log(f"wrote {out}")
    return res
