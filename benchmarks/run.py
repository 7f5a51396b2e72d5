"""Benchmarks with ratios measured side by side in one run (never timed assertions).

    python benchmarks/run.py            # full (several minutes on 2 cores)
    python benchmarks/run.py --fast     # small sizes
    python benchmarks/run.py --skip-incremental   # without the incremental-vs-full-retrain section (~25 min)
    python benchmarks/run.py --readme   # also rewrite the table between the BENCHMARKS markers in README.md

Times are the minimum over repeats (wall-clock seconds on this machine); ratios compare runs made in the
same process, minutes apart at most.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def best(fn, repeats=3):
    out = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--readme", action="store_true")
    ap.add_argument("--skip-incremental", action="store_true", help="leave out the incremental-vs-full section (~25 min)")
    args = ap.parse_args()

    from dataclasses import replace

    import torch

    from stmltm_nb.memory.batching import residual_pool
    from stmltm_nb.memory.cartridge import Cartridge, kv_bytes_per_token
    from stmltm_nb.memory.config import ConsolidationConfig
    from stmltm_nb.memory.consolidation import guard_targets, templates_of
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.memory.questions import build_queries
    from stmltm_nb.memory.stm import STMBuffer
    from stmltm_nb.memory.teacher import compute_teacher_targets, concat_targets
    from stmltm_nb.memory.training import train_cartridge
    from stmltm_nb.metrics.measure import ttft_cached, ttft_stateless
    from stmltm_nb.models import load_model
    from stmltm_nb.prompts import encode

    lm = load_model()
    facts = load_facts()
    q = "Which river flows through Tounkur?"
    per_tok = kv_bytes_per_token(lm.model.config)
    sizes = [16, 64] if args.fast else [16, 64, 200]  # 208 shipped facts: 200 stands in for 256
    p = 128
    lines = []

    # 1. TTFT and KV bytes: cartridge of p tokens vs STM of n items
    cart = Cartridge.create(lm, p=p, init="text")
    mem = cart.memory()
    t_cart = ttft_cached(mem, q, 5)
    q_ids = torch.tensor([encode(lm.tokenizer, mem.fmt.query(q))])
    t_cart_stateless = best(lambda: lm.model(input_ids=q_ids, cache=cart.kv_cache(), logits_to_keep=1), 5)
    lines.append("| STM n items | STM tokens n·b | token ratio n·b/p | TTFT cached STM / cartridge | TTFT stateless STM / cartridge | KV bytes STM / cartridge |")
    lines.append("|---|---|---|---|---|---|")
    buf = STMBuffer(lm)
    for n in sizes:
        while buf.n < n:
            buf.append(facts[buf.n].to_item())
        ratio_tok = buf.n_tokens / p
        t_c = ttft_cached(buf, q, 5)
        t_s = ttft_stateless(lm, buf.context_ids(), q, buf.fmt, 3)
        kv = buf.total_tokens * per_tok / cart.kv_bytes()
        lines.append(f"| {n} | {buf.n_tokens} | {ratio_tok:.2f} | {t_c / t_cart:.2f}× | {t_s / t_cart_stateless:.1f}× "
                     f"({100 * (t_s / t_cart_stateless) / max(ratio_tok, 1e-9):.0f} % of the token ratio) | {kv:.2f}× |")

    # 2. incremental append vs re-prefilling the whole buffer
    lines.append("")
    lines.append("| STM n items | append one item (incremental) | re-prefill all n+1 items | speed-up |")
    lines.append("|---|---|---|---|")
    for n in sizes:
        b = STMBuffer(lm)
        b.extend([f.to_item() for f in facts[:n]])
        extra = facts[n].to_item()

        def one_append(b=b, extra=extra):
            with b.on_top(encode(lm.tokenizer, b.fmt.item(extra.text))):  # the prefill STMBuffer.append does, cropped back
                pass

        t_inc = best(one_append, 5)
        all_ids = torch.tensor([b.context_ids() + encode(lm.tokenizer, b.fmt.item(extra.text))])
        t_full = best(lambda ids=all_ids: lm.model(input_ids=ids, logits_to_keep=1), 3)
        lines.append(f"| {n} | {1000 * t_inc:.1f} ms | {1000 * t_full:.1f} ms | {t_full / t_inc:.1f}× |")

    # 3. c_upd on 64 facts: teacher share; the trainer's steps/s and tokens/s with 1, 2 and 3 length-grouped
    # micro-batches per step (the same seeded batches, the same gradient: only the padding differs)
    n_f = 16 if args.fast else 64
    steps = 5 if args.fast else 10  # per timed run; each variant: the best of two runs, after one warm-up run
    fs = facts[:n_f]
    items = [f.to_item() for f in fs]
    cfg = ConsolidationConfig()  # the shipped recipe, guard rows included (their targets cached once per model)
    t0 = time.perf_counter()
    qs = build_queries(lm, items, templates_of(fs), n_self=0)
    tt_items = compute_teacher_targets(lm, items, qs, chunk_size=cfg.chunk_size, cache_dir=None)
    t_teacher = time.perf_counter() - t0
    guard, practice_items = guard_targets(lm, cfg, progress=False)
    tt = concat_targets([tt_items, *guard])
    pool = residual_pool(lm.tokenizer, items + practice_items)
    runs = {}
    variants = ((1, "float32"), (2, "float32"), (3, "float32"), (3, "bfloat16"))
    stm_text = "".join(it.text + "\n" for it in items)
    for rep in range(3):  # rep 0 warms up (not kept); the variants interleave, so a drifting machine hits them alike
        for mb, dtype in variants[:1] if rep == 0 else variants:
            c = Cartridge.create(lm, p=p, stm_text=stm_text)
            rr = train_cartridge(c, tt, replace(cfg, steps=steps, micro_batches=mb, dtype=dtype), residual=pool,
                                 progress=False)
            if rep and ((mb, dtype) not in runs or rr.seconds < runs[mb, dtype].seconds):
                runs[mb, dtype] = rr
    r = runs[cfg.micro_batches, cfg.dtype]
    full_train = r.seconds / steps * cfg.steps
    lines.append("")
    lines.append(f"| c_upd on {n_f} facts | value |")
    lines.append("|---|---|")
    lines.append(f"| teacher targets ({len(tt_items)} examples, chunk {cfg.chunk_size}) | {t_teacher:.0f} s |")
    lines.append(f"| student steps/s (batch {cfg.batch_size}, shipped recipe, {cfg.micro_batches} micro-batch(es)) "
                 f"| {steps / r.seconds:.3f} |")
    lines.append(f"| teacher share of c_upd at the default {cfg.steps} steps | "
                 f"{100 * t_teacher / (t_teacher + full_train):.0f} % |")
    lines.append("")
    lines.append(f"| micro-batches per step ({steps} steps, same batches) | compute dtype | steps/s | student tokens/s | "
                 "padded positions | speed vs 1 pass | final loss |")
    lines.append("|---|---|---|---|---|---|---|")
    one = runs[1, "float32"]
    for (mb, dtype), rr in runs.items():
        lines.append(f"| {mb} | {dtype} | {steps / rr.seconds:.3f} | {rr.tokens_seen / rr.seconds:.0f} | "
                     f"{100 * (1 - rr.tokens_seen / rr.positions):.0f} % | {one.seconds / rr.seconds:.2f}× | "
                     f"{rr.losses[-1]:.4f} |")

    # 4. the switching evaluator: lambdified vs sympy substitution
    from stmltm_nb.decision import symbolic as sym
    from stmltm_nb.decision.switching import CostModel, RecallModel, SwitchInputs, decide

    x = SwitchInputs(n=64, Q=500, c_upd=600, r_cart=0.01, cost=CostModel(0, 0.002),
                     recall=RecallModel("hyperbolic", q0=1, n50=12), q_cart=0.9, lam=5)
    k = 2000
    t_l = best(lambda: [decide(x) for _ in range(k)], 3) / k
    expr = sym.advantage_expr("linear", "hyperbolic")
    subs = {sym.n: 64, sym.kappa0: 0, sym.kappa1: 0.002, sym.r_cart: 0.01, sym.lam: 5, sym.Delta: 1, sym.eps_d: 0,
            sym.q0: 1, sym.q_cart: 0.9, sym.n50: 12}
    t_s = best(lambda: [float(expr.subs(subs)) for _ in range(50)], 3) / 50
    lines.append("")
    lines.append("| switching evaluator | decisions/s | ratio |")
    lines.append("|---|---|---|")
    lines.append(f"| `decide` (lambdified, all gates and terms) | {1 / t_l:,.0f} | {t_s / t_l:,.0f}× faster |")
    lines.append(f"| sympy `subs` of A(n) alone | {1 / t_s:,.0f} | 1× |")

    # 5. incremental update of +16 facts into a 64-fact cartridge vs a full retrain on 80 (benchmarks/incremental.py)
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from incremental import run as run_incremental
    from incremental import table as incremental_table

    stored = ROOT / "benchmarks" / "results" / "incremental_tune.json"
    if args.skip_incremental and stored.exists():  # not re-run: the stored result, named as such
        lines.append("")
        lines += incremental_table(json.loads(stored.read_text()))
        lines.append("")
        lines.append(f"(stored run: `benchmarks/results/{stored.name}`, `python benchmarks/incremental.py`)")
    if not args.skip_incremental:
        from stmltm_nb.models import cache_dir

        n_old, n_new = (8, 4) if args.fast else (64, 16)
        sets = ["steps=6", "update_steps=3", "batch_size=4", "p=16"] if args.fast else []
        out = Path(cache_dir()) / f"bench-incremental-{n_old}-{n_new}{'-fast' if args.fast else ''}.json"
        lines.append("")
        lines += incremental_table(run_incremental("tune", n_old, n_new, out, None, sets))

    table = "\n".join(lines)
    print(table)
    if args.readme:
        readme = ROOT / "README.md"
        text = readme.read_text()
        block = f"<!-- BENCHMARKS:START (python benchmarks/run.py --readme) -->\n{table}\n<!-- BENCHMARKS:END -->"
        text = re.sub(r"<!-- BENCHMARKS:START.*?<!-- BENCHMARKS:END -->", block, text, flags=re.S)
        readme.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
