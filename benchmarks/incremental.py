"""Incremental update vs full retrain (issue #14), side by side in one run on the default model:

1. ``full_old``: a cartridge trained from scratch on the first ``--old`` facts of the split (the committed one);
2. ``update``: ``--new`` more facts absorbed into it by :func:`~stmltm_nb.memory.consolidation.update`
   (warm start, ``update_steps`` steps, a replay sample of the old facts);
3. ``full_all``: a cartridge trained from scratch on all ``--old + --new`` facts.

Reported: c_upd of the update (teacher for the new facts + its training, seconds) vs c_upd of the full retrain
(teacher for all facts + training), their ratio, and recall (trained templates, first question per fact) of the
old and the new facts for each cartridge. The full retrain's teacher is charged at the per-fact rate measured for
the new facts in this run (so neither side profits from the cache, and a cached time measured under other load
does not count); the ratio with the cached original times is stored too. Each phase is stored in ``--out``
(JSON) as soon as it ends; a re-run resumes (the trained cartridges are kept in ``--work``; a full phase whose
recall is stored is not retrained unless its cartridge is needed). ``--retry-update`` moves the stored update row to
``update_tries`` (with its update settings) and runs the update again, e.g. with other ``--set update_*`` values; the
full phases are reused only when their recipe (every field but the ``update_*`` ones) is this run's.

    python benchmarks/incremental.py --out incremental.json                 # tuning split, 64 + 16 facts
    python benchmarks/incremental.py --split report --out data/incremental.json
    python benchmarks/incremental.py --out incremental.json --retry-update --set update_steps=160
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

SPLITS = {"tune": (0, 104), "report": (104, 208)}
UPDATE_FIELDS = ("update_steps", "update_lr", "update_new_share", "replay_size")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=SPLITS, default="tune")
    ap.add_argument("--old", type=int, default=64)
    ap.add_argument("--new", type=int, default=16)
    ap.add_argument("--out", default="incremental.json")
    ap.add_argument("--work", default=None, help="folder for the trained cartridges (default: the cache folder)")
    ap.add_argument("--set", nargs="*", default=[], help="ConsolidationConfig overrides, key=value")
    ap.add_argument("--retry-update", action="store_true",
                    help="keep the stored update row under update_tries and run the update again")
    args = ap.parse_args()
    res = run(args.split, args.old, args.new, Path(args.out), args.work, args.set, args.retry_update)
    print(json.dumps({k: v for k, v in res.items() if k not in ("config", "machine")}, indent=1))
    print("\n".join(table(res)))


def table(res: dict) -> list[str]:
    """The README rows: cost and recall of the update beside the full retrain."""
    u, f0, f = res["update"], res["full_old"], res["full_all"]
    old_cost = u["teacher_new_s"] / res["new"] * res["old"] + f0["train_s"]  # the same teacher rate as below
    return [f"| +{res['new']} facts into a {res['old']}-fact cartridge | c_upd, s | recall old {res['old']} | "
            f"recall new {res['new']} |", "|---|---|---|---|",
            f"| committed cartridge ({res['old']} facts, from scratch) | {old_cost:.0f} | {f0['recall_old']:.2f} | – |",
            f"| incremental update ({u['steps']} steps, {u['replayed']} replayed) | {u['c_upd_s']:.0f} "
            f"({100 * res['cost_ratio_update_vs_full']:.0f} % of a full retrain) | {u['recall_old']:.2f} | "
            f"{u['recall_new']:.2f} |",
            f"| full retrain on all {res['old'] + res['new']} ({f['steps']} steps) | {f['c_upd_same_teacher_rate_s']:.0f} | "
            f"{f['recall_old']:.2f} | {f['recall_new']:.2f} |"]


def run(split: str = "tune", n_old: int = 64, n_new: int = 16, out: Path = Path("incremental.json"),
        work: str | None = None, overrides: list[str] = (), retry_update: bool = False) -> dict:
    """The three phases (resumable through ``out``); returns the JSON-ready result. Raises a ``ValueError`` when
    ``out`` holds full phases of another recipe (nothing run, nothing written)."""
    args = argparse.Namespace(split=split, old=n_old, new=n_new, out=str(out), work=work, set=list(overrides))

    from stmltm_nb.apps.log import log
    from stmltm_nb.env import machine, seed_everything
    from stmltm_nb.io import atomic_write_json
    from stmltm_nb.memory.cartridge import Cartridge
    from stmltm_nb.memory.config import ConsolidationConfig, parse_overrides
    from stmltm_nb.memory.consolidation import Lesson, consolidate, teacher_targets_for, templates_of, update
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.metrics.recall import evaluate_recall
    from stmltm_nb.models import cache_dir, load_model

    seed_everything(0)
    out = Path(args.out)
    res = json.loads(out.read_text()) if out.exists() else {}

    def save() -> None:
        atomic_write_json(out, res)

    def measured(name: str) -> bool:
        return "recall_old" in res[name] and (name == "full_old" or "recall_new" in res[name])

    lo, hi = SPLITS[args.split]
    facts = load_facts()[lo:hi]
    old, new = facts[: args.old], facts[args.old : args.old + args.new]
    cfg = replace(ConsolidationConfig(), **parse_overrides(args.set))
    work = Path(args.work) if args.work else Path(cache_dir()) / f"bench-incremental-{args.split}-{args.old}-{args.new}"
    if res and "config" in res:
        stored = ConsolidationConfig.from_record(res["config"])
        if not replace(stored, **update_fields(cfg)).same_recipe(cfg):
            raise ValueError(f"{out} holds full phases of another recipe; pass another --out or the same --set values")
        if (res.get("split"), res.get("old"), res.get("new")) != (args.split, len(old), len(new)):
            raise ValueError(f"{out} holds a run of split {res.get('split')}, {res.get('old')} + {res.get('new')} "
                             f"facts; pass another --out")
        if "update" in res and update_fields(stored) != update_fields(cfg) and not retry_update:
            raise ValueError(f"{out} holds an update with {update_fields(stored)}; pass --retry-update to run "
                             f"{update_fields(cfg)} (the stored one is kept under update_tries)")
        if retry_update and "update" in res:
            res.setdefault("update_tries", []).append({**res.pop("update"), "config": update_fields(stored)})
            save()  # archived before anything else can fail; the stale folder is retrained over
    res.update({"split": args.split, "facts": [lo + 1, hi], "old": len(old), "new": len(new), "config": asdict(cfg),
                "machine": machine()})
    lm = load_model()

    def recall(cart: Cartridge, fs) -> float:
        return evaluate_recall(cart.memory(), fs, "train", first_question_only=True, with_nll=False).recall

    def phase(name: str, fn, needed: bool = True) -> Cartridge | None:
        folder = work / name
        if name in res and folder.is_dir():
            return Cartridge.from_pretrained(folder, lm)
        if name in res and not needed and measured(name):
            return None  # measured; its cartridge is not needed again
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
            r = consolidate(lm, Lesson.of_facts(fs), cfg)
            return r.cartridge, {"teacher_s": r.seconds["teacher"], "train_s": r.seconds["train"],
                                 "c_upd_s": r.seconds["teacher"] + r.seconds["train"], "steps": cfg.steps}
        return run

    # the committed cartridge is needed to train the update, or to measure it
    base = phase("full_old", full(old), needed=not ("update" in res and (work / "update").is_dir()))

    def incremental():
        r = update(lm, base, Lesson.of_facts(new, replay=old), cfg)
        t_new = teacher_targets_for(lm, [f.to_item() for f in new], templates_of(new), cfg).seconds
        return r.cartridge, {"teacher_new_s": t_new, "train_s": r.seconds["train"],
                             "c_upd_s": t_new + r.seconds["train"], "steps": cfg.update_steps,
                             "replayed": r.cartridge.meta["stats"]["update"]["replayed"],
                             "teacher_cache_hits": r.targets.cache_hits, "teacher_computed": r.targets.computed}

    upd = phase("update", incremental)
    every = phase("full_all", full(old + new), needed=False)
    for name, cart in (("full_old", base), ("update", upd), ("full_all", every)):
        row = res[name]
        if not measured(name):
            row["recall_old"] = recall(cart, old)
            if name != "full_old":
                row["recall_new"] = recall(cart, new)
            save()
    # the full retrain's teacher at this run's measured rate (s per new fact), so a cached teacher time measured
    # under other load does not flatter the update
    rate = res["update"]["teacher_new_s"] / len(new)
    res["full_all"]["c_upd_same_teacher_rate_s"] = rate * (len(old) + len(new)) + res["full_all"]["train_s"]
    res["cost_ratio_update_vs_full"] = res["update"]["c_upd_s"] / res["full_all"]["c_upd_same_teacher_rate_s"]
    res["cost_ratio_update_vs_full_cached_teacher_times"] = res["update"]["c_upd_s"] / res["full_all"]["c_upd_s"]
    res["old_recall_drop"] = res["full_old"]["recall_old"] - res["update"]["recall_old"]
    save()
    return res


def update_fields(cfg) -> dict:
    """The settings of an update alone (what ``--retry-update`` may change)."""
    return {k: getattr(cfg, k) for k in UPDATE_FIELDS}


if __name__ == "__main__":
    main()
