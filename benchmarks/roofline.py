"""The trainer against this machine's limit: a roofline for one student training step.

1. **Peak**: float32 matmul throughput (GFLOP/s) on the shapes the default model uses (a step's positions × d_model
   against each weight matrix) and on a square 1024³ reference, best of ``--repeats``; the peak is the best shape.
2. **Work**: the FLOPs of each measured step, counted from the model's shapes and the step's real micro-batch
   shapes (:mod:`stmltm_nb.metrics.flops`: projections, MLP, attention over prefix + causal keys, the head at the
   kept positions; backward = activation gradients of a frozen base).
3. **Time**: ``--steps`` training steps of the default recipe (``ConsolidationConfig()``) on the first ``--facts``
   facts of the tuning split, each phase timed: data (rows, residual stand-ins, length groups, collation),
   student forward, backward, optimizer. The first step is a warm-up and is not counted.

It prints achieved GFLOP/s and achieved / peak per phase, and writes the numbers as JSON (``--out``). With
``--set KEY=VALUE ...`` the same steps are also timed under those recipe overrides (a cut of the trainer's work,
e.g. ``micro_batches=3``), after the default, against the same peak: before and after, side by side in one run
(``"cut"`` in the JSON). Teacher targets come from the cache (computed once on a new machine). Run alone: a second
torch job on the same cores halves both.

    python benchmarks/roofline.py --set micro_batches=3 --out benchmarks/results/roofline.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path


def matmul_peak(shapes: list[tuple[int, int, int]], repeats: int = 10) -> list[dict]:
    """GFLOP/s of float32 (m × k) @ (k × n) for each shape: the best of ``repeats`` timed runs after a warm-up."""
    import torch

    from stmltm_nb.metrics.flops import matmul_flops

    out = []
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
        out.append({"m": m, "k": k, "n": n, "seconds": best, "gflops": matmul_flops(m, k, n) / best / 1e9})
    return out


def model_shapes(shape, positions: int) -> list[tuple[int, int, int]]:
    """The matmuls of one forward at ``positions`` rows: q/o, k/v (grouped-query), MLP up and down, the head."""
    d, hd = shape.d_model, shape.head_dim
    return [(positions, d, shape.heads * hd), (positions, d, shape.kv_heads * hd), (positions, d, shape.d_ff),
            (positions, shape.d_ff, d), (64, d, shape.vocab), (1024, 1024, 1024)]


def profile_steps(n_facts: int, steps: int, recipe: dict | None = None) -> dict:
    """Run ``steps`` steps of the default recipe (with ``recipe``'s overrides) and time each phase; FLOPs per step
    from its micro-batches."""
    from dataclasses import replace

    import torch

    from stmltm_nb.memory.batching import length_groups, residual_pool, student_batch
    from stmltm_nb.memory.config import ConsolidationConfig
    from stmltm_nb.memory.consolidation import (
        guard_targets,
        teacher_targets_for,
        templates_of,
        untrained_cartridge,
    )
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.memory.teacher import concat_targets
    from stmltm_nb.memory.training import MICRO_BATCH_OVERHEAD, autocast, batch_rows, distill_loss, row_pools
    from stmltm_nb.metrics.flops import ModelShape, step_flops
    from stmltm_nb.models import load_model

    lm = load_model("default")
    cfg = replace(ConsolidationConfig(), **(recipe or {}))
    facts = load_facts()[:n_facts]
    items = [f.to_item() for f in facts]
    guard, practice_items = guard_targets(lm, cfg, "default", True)
    tt = concat_targets([teacher_targets_for(lm, items, templates_of(facts), cfg, "default", True), *guard])
    cart = untrained_cartridge(lm, items, cfg)
    residual = residual_pool(lm.tokenizer, items + practice_items)
    pools = row_pools(tt, cfg)
    orders = {k: [] for k in pools}
    ex_loss = torch.full((len(tt),), float("nan"))
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.Adam(cart.trainable_parameters(), lr=cfg.lr)
    shape = ModelShape.from_config(lm.model.config)
    head = len(cart.student_context_ids())
    rows = []
    cart.peft_model.train()
    for s in range(steps + 1):
        t = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        t0 = time.perf_counter()
        idx, extra = batch_rows(tt, cfg, pools, orders, residual, ex_loss, gen)
        lengths = [head + len(x) + len(tt.examples[i].ids) for i, x in zip(idx, extra)]
        groups = length_groups(lengths, cfg.micro_batches, MICRO_BATCH_OVERHEAD)
        batches = [student_batch(cart, tt, [idx[j] for j in g], cfg.gold_weight, cfg.gold_boost,
                                 [extra[j] for j in g]) for g in groups]
        denom = sum(b[6].sum() for b in batches)
        t["data"] = time.perf_counter() - t0
        opt.zero_grad(set_to_none=True)
        micro, tokens = [], 0
        for b in batches:
            t1 = time.perf_counter()
            with autocast(cart, cfg.dtype):
                loss = distill_loss(cart.peft_model, b, denom=denom)
            t2 = time.perf_counter()
            loss.backward()
            t3 = time.perf_counter()
            t["forward"] += t2 - t1
            t["backward"] += t3 - t2
            input_ids, mask, _, cols = b[0], b[1], b[2], b[3]
            micro.append((int(input_ids.shape[0]), int(input_ids.shape[1]), int(torch.unique(cols).numel())))
            tokens += int(mask.sum())
        t4 = time.perf_counter()
        opt.step()
        t["optimizer"] = time.perf_counter() - t4
        if s == 0:
            continue  # warm-up
        fl = step_flops(shape, micro, prefix=cart.p, tokens=tokens)
        rows.append({"step": s, "seconds": t, "flops_forward": sum(fl.forward.values()),
                     "flops_backward": sum(fl.backward.values()), "flops_parts": {**{f"fwd_{k}": v for k, v in
                     fl.forward.items()}, **{f"bwd_{k}": v for k, v in fl.backward.items()}},
                     "padding_share": fl.padding_share, "micro_batches": micro, "tokens": tokens})
    return {"model": lm.name, "shape": asdict(shape), "facts": n_facts, "prefix_tokens": cart.p, "config": {"batch_size": cfg.batch_size,
            "micro_batches": cfg.micro_batches, "dtype": cfg.dtype, "steps_total": cfg.steps},
            "recipe": dict(recipe or {}), "threads": torch.get_num_threads(), "steps": rows}


def summary(peak: list[dict], prof: dict) -> list[dict]:
    """Per phase: median seconds per step, FLOPs per step (forward / backward; data and optimizer ~0), achieved
    GFLOP/s and achieved / peak."""
    best = max(p["gflops"] for p in peak)
    steps = prof["steps"]
    out = []
    for phase, key in (("data", None), ("forward", "flops_forward"), ("backward", "flops_backward"),
                       ("optimizer", None)):
        secs = statistics.median(r["seconds"][phase] for r in steps)
        flops = statistics.median(r[key] for r in steps) if key else 0.0
        gfs = flops / secs / 1e9 if secs > 0 and flops else 0.0
        out.append({"phase": phase, "seconds": secs, "gflop": flops / 1e9, "gflops": gfs, "of_peak": gfs / best})
    total_s = sum(r["seconds"] for r in out)
    total_f = sum(r["gflop"] for r in out) * 1e9
    out.append({"phase": "step", "seconds": total_s, "gflop": total_f / 1e9, "gflops": total_f / total_s / 1e9,
                "of_peak": total_f / total_s / 1e9 / best})
    return out


def print_table(prof: dict, table: list[dict]) -> None:
    """One profile's table: seconds, GFLOP, GFLOP/s and share of the peak per phase."""
    print(f"\none step ({prof['recipe'] or 'the default recipe'}): {prof['config']['batch_size']} rows in "
          f"<= {prof['config']['micro_batches']} micro-batches, prefix {prof['prefix_tokens']} tokens, median of "
          f"{len(prof['steps'])} steps; padding {statistics.median(r['padding_share'] for r in prof['steps']):.0%} "
          "of the positions computed")
    print(f"{'phase':<10} {'s/step':>8} {'GFLOP':>8} {'GFLOP/s':>9} {'of peak':>8}")
    for r in table:
        print(f"{r['phase']:<10} {r['seconds']:8.3f} {r['gflop']:8.2f} {r['gflops']:9.1f} {r['of_peak']:8.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--facts", type=int, default=16, help="facts of the tuning split to train on (default 16)")
    ap.add_argument("--steps", type=int, default=6, help="steps timed after one warm-up step (default 6)")
    ap.add_argument("--repeats", type=int, default=10, help="timed runs per matmul shape (best counts)")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="also time the steps under these recipe overrides (a cut), after the default")
    ap.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    args = ap.parse_args()
    if args.facts < 1 or args.steps < 1 or args.repeats < 1:
        ap.error("--facts, --steps and --repeats must be >= 1")
    from stmltm_nb.memory.config import parse_overrides

    try:
        cut = parse_overrides(args.set)  # a bad override fails before the model loads
    except ValueError as e:
        ap.error(f"--set: {e}")
    import torch

    from stmltm_nb.env import machine
    from stmltm_nb.metrics.flops import ModelShape

    prof = profile_steps(args.facts, args.steps)
    prof_cut = profile_steps(args.facts, args.steps, cut) if cut else None
    shape = ModelShape(**prof["shape"])
    positions = int(statistics.median(sum(r * w for r, w, _ in s["micro_batches"]) for s in prof["steps"]))
    peak = matmul_peak(model_shapes(shape, positions), args.repeats)
    table = summary(peak, prof)
    print(f"machine: {machine()}; torch {torch.__version__}, {prof['threads']} threads")
    print("float32 matmul peak (best of the model's shapes; a step's positions × d_model against each matrix):")
    for p in peak:
        print(f"  ({p['m']:>5} × {p['k']:>5}) @ ({p['k']:>5} × {p['n']:>5}): {p['gflops']:7.1f} GFLOP/s")
    print_table(prof, table)
    res = {"machine": machine(), "peak": peak, "profile": prof, "table": table}
    if prof_cut is not None:
        table_cut = summary(peak, prof_cut)
        print_table(prof_cut, table_cut)
        res["cut"] = {"recipe": cut, "profile": prof_cut, "table": table_cut}
        print(f"\ns/step: {table[-1]['seconds']:.2f} -> {table_cut[-1]['seconds']:.2f} "
              f"({table[-1]['seconds'] / table_cut[-1]['seconds']:.2f}x)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
