"""Policy regret of the online rules over many seeded streams (issue #28), torch-free: every rule of
``decision.online.RULES`` runs on a stream view that raises if it reads the stream's length or future arrivals.

Two sets with disjoint seeds: ``tune`` (400 steps, seeds 0–49), on which every-k's k and the shipped rule are chosen,
and ``report`` (500 steps, seeds 10000–10049), plus adversarial report streams built against each rule (queries
stop right after its consolidation; bursts timed against it). Per set, scenario and rule: mean, 90th percentile and
worst total-cost ratio against the hindsight oracle (regret = ratio − 1), the excess ratio, and the bound derived in
``decision.bounds``; a randomised rule is judged by its mean over 20 of its own seeds per stream. World:
``data/measured_curves.json``, λ = 5 s per wrong answer. Written to ``--out`` (JSON); README, notebook 08 and
``notebooks/figures/policy_bounds.png`` (``--figure``) render from it.

    python benchmarks/policies.py --out benchmarks/results/policy_regret.json --figure notebooks/figures/policy_bounds.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from stmltm_nb.decision.defaults import DEFAULTS


def run(lam: float = DEFAULTS.lam, n_streams: int = 50, random_seeds: int = 20) -> dict:
    from stmltm_nb.decision.curves import load_curves
    from stmltm_nb.decision.evaluation import evaluate
    from stmltm_nb.decision.policies import world_from_curves

    world = world_from_curves(load_curves(), lam=lam)
    t0 = time.time()
    res = evaluate(world, n_streams=n_streams, random_seeds=random_seeds,
                   progress=lambda m: print(f"[{time.time() - t0:6.0f} s] {m}", flush=True))
    return {"lam": lam, **res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="policy_regret.json")
    ap.add_argument("--figure", default=None, help="also write the ratio-vs-bound PNG here")
    ap.add_argument("--lam", type=float, default=DEFAULTS.lam, help="s per wrong answer (default: the shipped λ)")
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--random-seeds", type=int, default=20)
    args = ap.parse_args()
    res = run(args.lam, args.streams, args.random_seeds)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    for r in res["rows"]:
        bound = "" if r["rule"] == "every-k" else f"  bound ≥ {r['bound_min'] or float('inf'):5.2f} ok={r['bound_ok']}"
        k = f" (k={r['k']})" if r["k"] else ""
        print(f"{r['set']:<7}{r['scenario'][:25]:<26}{(r['rule'] + k)[:18]:<19}regret mean {r['mean_regret']:6.1f} % "
              f"p90 {r['p90_regret']:6.1f} % worst {r['worst_regret']:6.1f} %{bound}")
    print("every-k tuned:", res["every_k"], "| shipped (chosen on tune):", res["shipped"], "|", res["verdict"])
    if args.figure:
        from stmltm_nb.decision.policy_figures import write_bounds_png

        write_bounds_png(res, args.figure)
        print("wrote", args.figure)


if __name__ == "__main__":
    main()
