"""Incremental update vs full retrain (issue #14), side by side in one run on the default model:

1. ``full_old``: a cartridge trained from scratch on the first ``--old`` facts of the split (the committed one);
2. ``update``: ``--new`` more facts absorbed into it by :func:`~stmltm_nb.memory.consolidation.update`
   (warm start, ``update_steps`` steps, a replay sample of the old facts);
3. ``full_all``: a cartridge trained from scratch on all ``--old + --new`` facts.

Reported: c_upd of the update (teacher for the new facts + its training, seconds) vs c_upd of the full retrain
(teacher for all facts + training), their ratio, and recall (trained templates, first question per fact) of the
old and the new facts for each cartridge. Teacher times are the original computation times (a cached chunk counts
what it cost when it was computed), so neither side profits from the cache. Each phase is stored in ``--out``
(JSON) as soon as it ends; a re-run resumes (the trained cartridges are kept in ``--work``).

    python benchmarks/incremental.py --out incremental.json                 # tuning split, 64 + 16 facts
    python benchmarks/incremental.py --split report --out data/incremental.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

SPLITS = {"tune": (0, 104), "report": (104, 208)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=SPLITS, default="tune")
    ap.add_argument("--old", type=int, default=64)
    ap.add_argument("--new", type=int, default=16)
    ap.add_argument("--out", default="incremental.json")
    ap.add_argument("--work", default=None, help="folder for the trained cartridges (default: the cache folder)")
    ap.add_argument("--set", nargs="*", default=[], help="ConsolidationConfig overrides, key=value")
    args = ap.parse_args()

    from stmltm_nb.apps.log import log
    from stmltm_nb.env import machine, seed_everything
    from stmltm_nb.io import atomic_write_json
    from stmltm_nb.memory.cartridge import Cartridge
    from stmltm_nb.memory.config import ConsolidationConfig
    from stmltm_nb.memory.consolidation import consolidate, teacher_targets_for, templates_of, update
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.metrics.recall import evaluate_recall
    from stmltm_nb.models import cache_dir, load_model

    seed_everything(0)
    out = Path(args.out)
    res = json.loads(out.read_text()) if out.exists() else {}
    lo, hi = SPLITS[args.split]
    facts = load_facts()[lo:hi]
    old, new = facts[: args.old], facts[args.old : args.old + args.new]
    overrides = dict(kv.split("=", 1) for kv in args.set)
    cfg = replace(ConsolidationConfig(), **{k: type(getattr(ConsolidationConfig, k))(v) for k, v in overrides.items()})
    work = Path(args.work) if args.work else Path(cache_dir()) / f"bench-incremental-{args.split}-{args.old}-{args.new}"
    res.update({"split": args.split, "facts": [lo + 1, hi], "old": len(old), "new": len(new), "config": asdict(cfg),
                "machine": machine()})
    lm = load_model()
    model, tok = lm.model, lm.tokenizer

    def recall(cart: Cartridge, fs) -> float:
        return evaluate_recall(cart.memory(), fs, "train", first_question_only=True, with_nll=False).recall

    def save() -> None:
        atomic_write_json(out, res)

    def phase(name: str, fn) -> Cartridge:
        folder = work / name
        if name in res and folder.is_dir():
            return Cartridge.load(folder, model, tok)
        log(name)
        t0 = time.perf_counter()
        cart, row = fn()
        cart.save_pretrained(folder, overwrite=True)
        row["wall_s"] = time.perf_counter() - t0
        res[name] = row
        save()
        return cart

    def full(fs):
        def run():
            r = consolidate(model, tok, [f.to_item() for f in fs], templates_of(fs), cfg)
            return r.cartridge, {"teacher_s": r.seconds["teacher"], "train_s": r.seconds["train"],
                                 "c_upd_s": r.seconds["teacher"] + r.seconds["train"], "steps": cfg.steps}
        return run

    base = phase("full_old", full(old))

    def incremental():
        r = update(model, tok, base, [f.to_item() for f in new], templates_of(old + new), cfg,
                   replay=[f.to_item() for f in old])
        t_new = teacher_targets_for(model, tok, [f.to_item() for f in new], templates_of(new), cfg).seconds
        return r.cartridge, {"teacher_new_s": t_new, "train_s": r.seconds["train"],
                             "c_upd_s": t_new + r.seconds["train"], "steps": cfg.update_steps,
                             "replayed": r.cartridge.meta["stats"]["update"]["replayed"],
                             "teacher_cache_hits": r.targets.cache_hits, "teacher_computed": r.targets.computed}

    upd = phase("update", incremental)
    every = phase("full_all", full(old + new))
    for name, cart in (("full_old", base), ("update", upd), ("full_all", every)):
        row = res[name]
        if "recall_old" not in row:
            row["recall_old"] = recall(cart, old)
            if name != "full_old":
                row["recall_new"] = recall(cart, new)
            save()
    res["cost_ratio_update_vs_full"] = res["update"]["c_upd_s"] / res["full_all"]["c_upd_s"]
    res["old_recall_drop"] = res["full_old"]["recall_old"] - res["update"]["recall_old"]
    save()
    print(json.dumps({k: v for k, v in res.items() if k not in ("config", "machine")}, indent=1))


if __name__ == "__main__":
    main()
