"""c_upd of a 64-fact cartridge: today's trainer against a cut, side by side in one run, recall checked.

Two runs of ``stmltm measure --split tune --seeds 0 --cartridges-only --ask-batch 16`` one after the other in this
process: **today** (the shipped :class:`~stmltm_nb.memory.config.ConsolidationConfig`) and **cut** (today plus the
``--cut KEY=VALUE ...`` overrides). Each trains its cartridge on facts f001-f064 and asks the question bank
(trained and held-out wordings, the cartridge alone and with 16 newer notes) and the retention passages.

- c_upd of each = its consolidation's ``seconds.total``: the teacher pass of the 64 facts (its compute seconds,
  recorded with the cached targets, so a run reading them from the cache is charged as if it computed them) plus
  the training. The guard rows' targets are the shipped ones (``data/teacher_targets``), as on any machine.
- Recall: the cut against today question by question (:func:`stmltm_nb.metrics.levers.lever_gaps`: paired
  differences, 95 % intervals that resample relations, then facts). The cut **keeps recall** when no part is
  "worse" (an interval wholly below 0); a difference inside its interval is no difference.

Both runs are written beside ``--out`` (``<stem>_today.json``, ``<stem>_cut.json``) after every section and
resumed from there (a consolidation is never resumed half-way: its section is written when it is done); the
summary (c_upd of each, their ratio, steps/s, every recall part with its interval, the bar) goes to ``--out``.
A further cut can share today's run (``--today <stem>_today.json``: resumed, not trained again; it was measured on
the same machine, and the summary records both runs' dates). Run alone: a second torch job slows both.

    python benchmarks/cupd.py --cut steps=200 micro_batches=3 --out benchmarks/results/cupd_tune.json
    python benchmarks/cupd.py --cut steps=220 lr=0.04 micro_batches=3 --today benchmarks/results/cupd_tune_today.json \
        --out benchmarks/results/cupd_tune_lr.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

BAR_S = 600.0  # c_upd of 64 facts the cut must reach (seconds, 2 cores)


def run_paths(out: Path, today: Path | None = None) -> dict[str, Path]:
    """Where the two runs behind the summary ``out`` are written (``today``: another summary's run of today's
    trainer, resumed instead of trained again, so that several cuts share one measurement of it)."""
    return {"today": today or out.with_name(f"{out.stem}_today.json"), "cut": out.with_name(f"{out.stem}_cut.json")}


def c_upd_row(run: dict[str, Any]) -> dict[str, Any]:
    """c_upd (seconds: teacher + training), its parts and the trainer's steps/s from a run's consolidation."""
    cons = run["consolidation"]
    secs, steps = cons["seconds"], cons["config"]["steps"]
    return {"c_upd_s": secs["total"], "teacher_s": secs["teacher"], "train_s": secs["train"], "steps": steps,
            "steps_per_s": steps / secs["train"] if secs["train"] > 0 else None,
            "student_tokens": cons.get("student_tokens"), "recipe": run.get("recipe", {}), "created": run.get("created")}


def summarise(today: dict[str, Any], cut: dict[str, Any], bar_s: float = BAR_S, n_boot: int = 2000) -> dict[str, Any]:
    """The side-by-side summary of two finished runs (torch-free): c_upd of each and their ratio, and the cut's
    recall against today's per part with the difference's paired interval and each run's own interval
    (:func:`~stmltm_nb.metrics.levers.lever_gaps`: ``base_lo`` … ``lever_hi``); ``keeps_recall`` when no part is
    worse; ``meets_bar`` when it keeps recall and its c_upd is at most ``bar_s``."""
    from stmltm_nb.metrics.levers import lever_gaps

    rows = lever_gaps(today, cut, n_boot=n_boot)
    a, b = c_upd_row(today), c_upd_row(cut)
    worse = [r for r in rows if r["verdict"] == "worse"]
    keeps = not worse
    return {"machine": cut.get("machine"), "bar_s": bar_s, "today": a, "cut": b,
            "speedup": a["c_upd_s"] / b["c_upd_s"], "recall": rows, "keeps_recall": keeps,
            "worse": [f"{r['memory']} / {r['questions']} / {r['facts']}" for r in worse],
            "meets_bar": keeps and b["c_upd_s"] <= bar_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cut", nargs="+", required=True, metavar="KEY=VALUE",
                    help="ConsolidationConfig overrides of the cut, e.g. steps=200 micro_batches=3")
    ap.add_argument("--ask-batch", type=int, default=16, help="questions answered at once (default 16)")
    ap.add_argument("--out", type=Path, default=Path("cupd_tune.json"), help="the summary (JSON)")
    ap.add_argument("--fast", action="store_true", help="measure's fast sizes (16 facts, 30 steps): a smoke run")
    ap.add_argument("--summary-only", action="store_true",
                    help="write the summary from the two finished runs beside --out (nothing trained or asked)")
    ap.add_argument("--today", type=Path, default=None,
                    help="today's run to resume (another cut's <stem>_today.json) instead of training it again")
    args = ap.parse_args()
    from stmltm_nb.apps.measure_job import check_run_args, run_measurements
    from stmltm_nb.memory.config import parse_overrides

    try:  # both checked before the model loads
        cut = parse_overrides(args.cut)
        check_run_args(split="tune", seeds=[0], recipe=cut, cartridges_only=True, ask_batch=args.ask_batch)
    except ValueError as e:
        ap.error(str(e))
    if not cut:
        ap.error("--cut needs at least one override")
    if args.today is not None and not args.today.is_file():
        ap.error(f"--today {args.today}: no such run (a summary's <stem>_today.json)")
    paths = run_paths(args.out, args.today)
    runs = {}
    for name, recipe in (("today", {}), ("cut", cut)):
        path = paths[name]
        if args.summary_only:
            run = json.loads(path.read_text()) if path.is_file() else {}
            if not run.get("consolidation") or not run.get("retention"):
                ap.error(f"--summary-only: {path} is not a finished run; run without --summary-only")
            if run.get("recipe") != recipe:
                ap.error(f"--summary-only: {path} was run with {run.get('recipe')}, not {recipe or 'the shipped recipe'}")
            runs[name] = run
            continue
        print(f"== {name}: {recipe or 'the shipped recipe'} -> {path}", flush=True)
        runs[name] = run_measurements(out=path, resume=True, split="tune", seeds=[0], recipe=recipe,
                                      cartridges_only=True, ask_batch=args.ask_batch, fast=args.fast)
    res = summarise(runs["today"], runs["cut"])
    a, b = res["today"], res["cut"]
    print(f"\nc_upd, {runs['cut']['n_facts']} facts: today {a['c_upd_s']:.0f} s (teacher {a['teacher_s']:.0f} + {a['steps']} steps "
          f"{a['train_s']:.0f} s), cut {b['c_upd_s']:.0f} s (teacher {b['teacher_s']:.0f} + {b['steps']} steps "
          f"{b['train_s']:.0f} s): {res['speedup']:.2f}x")
    for r in res["recall"]:
        d = r["delta"]
        ci = f"[{r['lo']:+.2f}, {r['hi']:+.2f}]" if r.get("lo") is not None else ""
        print(f"  {r['memory']:<24} {r['questions']:<13} {r['facts']:<16} {r['base']:+.3f} -> {r['lever']:+.3f} "
              f"({d:+.3f} {ci}) {r['verdict']}")
    print(f"keeps recall: {res['keeps_recall']}{' (worse: ' + ', '.join(res['worse']) + ')' if res['worse'] else ''}; "
          f"c_upd <= {res['bar_s']:.0f} s: {b['c_upd_s'] <= res['bar_s']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
