"""Batched asking against one by one, side by side in one run.

1. ``--run``: a lever's run asked one question at a time (``stmltm measure --cartridges-only``, ``--ask-batch 1``);
   its cached cartridge is asked again with ``--batch`` questions at once (the run's sections are resumed: no
   training) and every record is compared: hits, answer NLL, the seconds the asking took each way (one by one: the
   run's own seconds, measured when it ran; part 2 times both ways back to back).
2. ``--curve``: the STM recall curve at the demo's sizes (``stmltm demo``: 1-64 items, 2 questions per position),
   asked one by one and with every question about one buffer at once (8 at most), timed back to back; the rows
   must be equal.

    python benchmarks/ask_batch.py --run lever_tune_pool.json --batch 16 --curve --out benchmarks/results/ask_batch_check.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def compare(one: dict, many: dict) -> dict:
    """Record by record, the run asked one by one against the same run asked in batches."""
    from stmltm_nb.metrics.levers import run_records

    key = ("mode", "kind", "fact", "w", "seed")
    a = {tuple(r.get(k) for k in key): r for r in run_records(one)}
    b = {tuple(r.get(k) for k in key): r for r in run_records(many)}
    if set(a) != set(b):
        raise ValueError("the two runs did not ask the same questions")
    differ = sorted((k for k in a if a[k]["hit"] != b[k]["hit"]), key=str)
    nll = [abs(a[k]["nll"] - b[k]["nll"]) for k in a if "nll" in a[k] and "nll" in b[k]]
    secs = lambda run: sum(v for k, v in run["section_seconds"].items() if k.startswith("evaluation"))  # noqa: E731
    return {"questions": len(a), "hits_differ": len(differ), "differing": [list(k) for k in differ],
            "max_nll_diff": max(nll, default=None), "seconds_one_by_one": secs(one),
            "seconds_batched": secs(many), "batch": max(r.get("batch", 1) for r in b.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", help="a --cartridges-only run asked one by one (its cartridge cached)")
    ap.add_argument("--curve", action="store_true", help="also time the demo's STM recall curve both ways")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", default="ask_batch_check.json")
    args = ap.parse_args()

    res: dict = {}
    if args.run:
        res.update(check_run(Path(args.run), args.batch))
    if args.curve:
        res["recall_curve"] = curve_side_by_side()
    if not res:
        raise SystemExit("nothing to do: give --run, --curve or both")
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    if args.run:
        print(f"{res['questions']} questions: {res['hits_differ']} hits differ, max |ΔNLL| {res['max_nll_diff']}; "
              f"asking {res['seconds_one_by_one']:.0f} s one by one, {res['seconds_batched']:.0f} s {args.batch} at a "
              f"time (ratio {res['seconds_one_by_one'] / res['seconds_batched']:.2f})")
    if args.curve:
        c = res["recall_curve"]
        print(f"STM recall curve (demo sizes): {c['seconds_one_by_one']:.0f} s one by one, {c['seconds_batched']:.0f} s "
              f"batched (ratio {c['seconds_one_by_one'] / c['seconds_batched']:.2f}); rows equal: {c['rows_equal']}")


def check_run(path: Path, batch: int) -> dict:
    """Part 1: the lever's run at ``path`` asked again ``batch`` at a time, compared record by record."""
    from stmltm_nb.apps.measure_job import run_measurements

    one = json.loads(path.read_text())
    if not one.get("cartridges_only") or any(r.get("batch") for p in one["evaluation"].values() for r in p):
        raise SystemExit(f"{path}: not a cartridges-only run asked one question at a time")
    again = {k: v for k, v in one.items() if k not in ("evaluation", "comparison")}
    again["section_seconds"] = {k: v for k, v in one["section_seconds"].items() if not k.startswith("evaluation")}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "again.json"
        out.write_text(json.dumps(again))
        many = run_measurements(out=out, resume=True, split=one["split"]["name"], seeds=one["seeds"],
                                recipe=one.get("recipe") or {}, cartridges_only=True, ask_batch=batch,
                                n_facts=one["n_facts"], n_resid=one["n_resid"], fast=one["fast"])
    return {"run": path.name, **compare(one, many)}


def curve_side_by_side(sizes: tuple[int, ...] = (1, 4, 16, 32, 64), per_position: int = 2) -> dict:
    """Part 2: the demo's STM recall curve one by one, then batched per buffer (seconds, rows equal)."""
    import time

    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.metrics.measure import recall_curve
    from stmltm_nb.models import load_model

    lm, facts = load_model(), load_facts()
    out = {"sizes": list(sizes), "per_position": per_position}
    rows = {}
    for name, batch in (("one_by_one", 1), ("batched", 8)):
        t0 = time.perf_counter()
        rows[name] = recall_curve(lm, facts, list(sizes), per_position=per_position, batch_size=batch)
        out[f"seconds_{name}"] = time.perf_counter() - t0
    keys = ("n", "position", "hits", "total", "facts")
    out["rows_equal"] = [[r[k] for k in keys] for r in rows["one_by_one"]] == [[r[k] for k in keys]
                                                                              for r in rows["batched"]]
    out["questions"] = sum(r["total"] for r in rows["one_by_one"])
    return out


if __name__ == "__main__":
    main()
