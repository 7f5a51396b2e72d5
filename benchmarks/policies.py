"""Policy regret of the online rule (issue #15), torch-free: every policy except the hindsight oracle runs on a
stream view that raises if it reads the stream's length or future arrivals (``decision.policies``).

Two scenario sets: ``tune`` (400 steps, seed 0), where rule variants may be compared, and ``report`` (500 steps,
seed 1: other lengths and draws), which no variant choice saw. For each set and rule variant: the regret (%) of the
rule, of the best every-k schedule (chosen in hindsight) and of the other baselines vs the oracle, on the world of
``data/measured_curves.json`` (λ = 5 s per wrong answer). Written to ``--out`` (JSON); README and notebook 08 render
from it.

    python benchmarks/policies.py --out benchmarks/results/policy_regret.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SETS = {"tune": (400, 0), "report": (500, 1)}
VARIANTS = {  # name -> InequalityPolicy keyword arguments; "shipped" is the controller's ControllerConfig
    "shipped": None,
    "eta 0, m_floor 1": {"eta": 0.0, "m_floor": 1},
    "eta 0, m_floor 16, slow rate EMA 0.02": {"eta": 0.0, "m_floor": 16, "ema": 0.02},
    "eta 0.1, m_floor 16, slow rate EMA 0.02": {"eta": 0.1, "m_floor": 16, "ema": 0.02},
    "ski rental only": {"eta": 0.0, "m_floor": 1, "mode": "ski"},
}


def run(lam: float = 5.0) -> dict:
    from stmltm_nb.decision.curves import load_curves
    from stmltm_nb.decision.policies import InequalityPolicy, compare, scenarios, world_from_curves

    world = world_from_curves(load_curves(), lam=lam)
    out: dict = {"lam": lam, "sets": {k: {"steps": s, "seed": sd} for k, (s, sd) in SETS.items()}, "rows": []}
    for set_name, (steps, seed) in SETS.items():
        for sc in scenarios(steps=steps, seed=seed):
            for var, kw in VARIANTS.items():
                pol = InequalityPolicy.from_config() if kw is None else InequalityPolicy(**kw)
                res = compare(world, sc, policy=pol)
                best = res[-1].total
                row = {"set": set_name, "scenario": sc.name, "variant": var,
                       **{r.policy.split(" (")[0]: 100 * (r.total / best - 1) for r in res},
                       "best_k": int(res[1].policy.split("k=")[1].rstrip(")"))}
                row["rule"] = row.pop("inequality")
                row["within_10"] = row["rule"] <= 10.0
                row["beats_every_k"] = row["rule"] < row["best every-k"]
                out["rows"].append(row)
    out["summary"] = {f"{s}|{v}": sum(r["within_10"] and r["beats_every_k"] for r in out["rows"]
                                      if r["set"] == s and r["variant"] == v)
                      for s in SETS for v in VARIANTS}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="policy_regret.json")
    ap.add_argument("--lam", type=float, default=5.0)
    args = ap.parse_args()
    res = run(args.lam)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    for r in res["rows"]:
        print(f"{r['set']:<7}{r['scenario'][:12]:<13}{r['variant'][:40]:<41}rule {r['rule']:5.1f} %  "
              f"every-k {r['best every-k']:5.1f} %")
    print(json.dumps(res["summary"], indent=1))


if __name__ == "__main__":
    main()
