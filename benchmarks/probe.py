"""Does a short probe run predict a full consolidation's held-out recall? (issue #15, item 2)

For each size n, the probe (:func:`~stmltm_nb.metrics.recall_probe.run_recall_probe`; three designs: ``steps``, the
shipped one, all items for a quarter of the steps; ``replica``, a quarter of the items, at least 8, with the cartridge
size and the steps scaled alike; ``teacher``, no training, each item alone in context) and the full consolidation are
measured on the same n facts, one held-out paraphrase per probed fact.
The probe's offset (log-odds, :func:`~stmltm_nb.metrics.probe.probe_offset`) is calibrated on the tuning split (facts 1-64; the full run there is the shipped recipe's row of
``data/ltm_recipe.jsonl``); the prediction q̂_cart(n) = sigmoid(logit q_probe + offset) is reported on the report split (facts
105-120, 105-136, 105-168; the 64-fact full run is the comparison in ``data/measured_curves.json``), which neither
the recipe nor the offset saw.

Rows go to ``--out`` (JSONL, resumable: a task already there is skipped). ``--curves FILE`` then writes the
``q_cart_probe`` section (the predicted points the switching rule uses, :func:`~stmltm_nb.decision.curves.priors`).

    python benchmarks/probe.py --out benchmarks/results/probe_recall.jsonl --curves data/measured_curves.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stmltm_nb.metrics.probe import PROBE_SHARE, PROBE_VARIANTS

SPLIT_START = {"tune": 0, "report": 104}
TASKS = [(split, n, variant) for variant in PROBE_VARIANTS
         for split, n in (("tune", 64), ("report", 16), ("report", 32), ("report", 64))] + \
    [("report", 32, "full"), ("report", 16, "full")]  # kind: a probe variant (PROBE_VARIANTS) or "full"
RECIPE_ROW = "prefix_prose25_p25_res50"  # the shipped recipe's tuning-split row of data/ltm_recipe.jsonl


def read_rows(path: Path) -> list[dict]:
    from stmltm_nb.io import read_jsonl

    return read_jsonl(path) if path.exists() else []


def recorded_full(split: str, n: int, cfg) -> dict | None:
    """A full run measured elsewhere with this recipe on these facts, as a row (None when there is none)."""
    from stmltm_nb.decision.curves import load_curves, ltm_recall
    from stmltm_nb.memory.config import ConsolidationConfig
    from stmltm_nb.shipped import data_dir

    if (split, n) == ("tune", 64):
        for r in read_rows(data_dir() / "ltm_recipe.jsonl"):
            if (r["name"] == RECIPE_ROW and r["facts"][0] == 1 and r["n_cart"] == 64
                    and ConsolidationConfig.from_record(r["config"]).same_recipe(cfg)):
                return {"split": split, "n": n, "kind": "full", "q": r["ltm_heldout"], "q_train": r["ltm_train"],
                        "seconds": r["seconds"]["train"], "source": f"data/ltm_recipe.jsonl:{RECIPE_ROW}"}
    if (split, n) == ("report", 64):
        c = load_curves()
        cons = c.get("consolidation", {})
        if (c.get("split", {}).get("name") == "report" and "config" in cons
                and ConsolidationConfig.from_record(cons["config"]).same_recipe(cfg)):
            return {"split": split, "n": n, "kind": "full", "q": ltm_recall(c), "q_train": ltm_recall(c, questions="train"),
                    "seconds": cons["seconds"]["train"], "source": "data/measured_curves.json:comparison"}
    return None


def task_of(row: dict) -> tuple[str, int, str]:
    """(split, n, kind) of a row: kind is "full" or the probe's variant (rows from before variants: "steps")."""
    return row["split"], row["n"], row["kind"] if row["kind"] == "full" else row.get("variant", "steps")


def measure(task: tuple[str, int, str], lm, cfg) -> dict:
    """One row: a probe of variant ``task[2]`` or the full consolidation (the same measurement at share 1),
    held-out and trained-template recall, seconds of training + answers."""
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.metrics.recall_probe import run_recall_probe

    split, n, kind = task
    lo = SPLIT_START[split]
    facts = load_facts()[lo : lo + n]
    full = kind == "full"
    p = run_recall_probe(lm, facts, cfg, share=1.0 if full else PROBE_SHARE, progress=True,
                         **({} if full else {"variant": kind}))  # share 1: the full run, whatever the design
    row = {"split": split, "n": n, "kind": "full" if full else "probe", "facts": [lo + 1, lo + n], "q": p.q_probe,
           "q_train": p.q_probe_train, "seconds": p.seconds, "steps": p.probe_steps}
    return {**row, "source": "benchmarks/probe.py"} if full else {**row, "variant": kind, "items": p.probe_items,
                                                                   "p": p.probe_p}


def summary(rows: list[dict], variant: str = "steps") -> dict:
    """Offset from the tuning pair(s), predicted vs measured on the report split (recall fractions)."""
    from stmltm_nb.metrics.probe import probe_table

    return probe_table(rows, PROBE_SHARE, variant)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="probe_recall.jsonl")
    ap.add_argument("--curves", default=None, help="write the q_cart_probe section into this measured-curves file")
    ap.add_argument("--only", nargs="*", default=None, help="tasks as split:n:design (steps, replica, teacher) or split:n:full (default: all)")
    args = ap.parse_args()
    out = Path(args.out)
    todo = [t for t in TASKS if args.only is None or ":".join(map(str, t)) in args.only]

    from stmltm_nb.memory.config import ConsolidationConfig

    cfg = ConsolidationConfig()
    rows = read_rows(out)
    done = {task_of(r) for r in rows}
    lm = None
    for task in [("tune", 64, "full"), ("report", 64, "full")] + todo:
        if task in done:
            continue
        row = recorded_full(task[0], task[1], cfg) if task[2] == "full" else None
        if row is None and task in todo:
            from stmltm_nb.env import seed_everything
            from stmltm_nb.models import load_model

            if lm is None:
                seed_everything(0)
                lm = load_model()
            row = measure(task, lm, cfg)
        if row is not None:
            rows.append(row)
            done.add(task)
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    if ("tune", 64, "full") not in done:
        raise SystemExit("no full run on the tuning split with the shipped recipe (data/ltm_recipe.jsonl row "
                         f"{RECIPE_ROW} with this config): run benchmarks/ltm_recipe.py first; nothing calibrated")
    for variant in PROBE_VARIANTS[::-1]:
        print(variant, json.dumps(summary(rows, variant), indent=1))
    res = summary(rows)
    if args.curves and res["rows"]:
        from stmltm_nb.decision.curves import load_curves
        from stmltm_nb.io import atomic_write_json

        curves = load_curves(args.curves)
        curves["q_cart_probe"] = {"points": [[r["n"], r["predicted"]] for r in res["rows"]], "source": "benchmarks/probe.py",
                                  **res}
        atomic_write_json(Path(args.curves), curves)
        print(f"q_cart_probe written to {args.curves}")


if __name__ == "__main__":
    main()
