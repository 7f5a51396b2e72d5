"""LTM recipe experiments (issue #13): does the cartridge join memory instead of replacing it?

One run = consolidate ``--cart`` facts with a recipe (the shipped ConsolidationConfig plus ``--set`` overrides),
keep the next ``--resid`` facts as residual STM, and measure, one question per fact:
LTM recall (trained templates, held-out paraphrases) on the cartridge facts; LTM + residual STM recall on the
cartridge facts and on the residual facts; the residual facts alone in STM without a cartridge; and retention
(NLL of ``data/general_text.txt`` as a reply, nats/token) for no memory, LTM and LTM + residual STM.

Splits: ``--split tune`` uses facts 1-104 (recipes are chosen here), ``--split report`` facts 105-208 (reported,
never used for choosing). Rows are appended to ``--out`` (JSONL; the shipped runs are ``data/ltm_recipe.jsonl``, pass it explicitly); a name already there is skipped (resumable).

    python benchmarks/ltm_recipe.py --name r25p25 --set retention_frac=0.25 practice_frac=0.25
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
    ap.add_argument("--name", required=True)
    ap.add_argument("--split", choices=SPLITS, default="tune")
    ap.add_argument("--cart", type=int, default=64)
    ap.add_argument("--resid", type=int, default=8)
    ap.add_argument("--set", nargs="*", default=[], help="ConsolidationConfig overrides, key=value")
    ap.add_argument("--out", default="ltm_recipe.jsonl", help="JSONL to append to (the shipped runs: data/ltm_recipe.jsonl)")
    ap.add_argument("--save", default=None, help="save the cartridge to this folder")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists() and any(json.loads(line)["name"] == args.name for line in out.read_text().splitlines() if line):
        print(f"{args.name}: already in {out}, skipped")
        return

    from stmltm_nb.env import machine, seed_everything
    from stmltm_nb.memory.config import ConsolidationConfig, parse_overrides
    from stmltm_nb.memory.consolidation import Lesson, RunOptions, consolidate
    from stmltm_nb.memory.facts import general_text, load_facts
    from stmltm_nb.memory.stm import STMBuffer
    from stmltm_nb.metrics.recall import evaluate_recall, text_nll
    from stmltm_nb.models import load_model

    cfg = replace(ConsolidationConfig(), **parse_overrides(args.set))  # a bad override fails before the model loads
    seed_everything(0)
    lm = load_model()
    lo, hi = SPLITS[args.split]
    facts = load_facts()[lo:hi]
    cart_f, resid_f = facts[: args.cart], facts[args.cart : args.cart + args.resid]
    t0 = time.perf_counter()
    run = consolidate(lm, Lesson.of_facts(cart_f, config=cfg), cfg, RunOptions(progress=True))
    cart = run.cartridge
    if args.save:
        cart.save_pretrained(args.save, overwrite=True)

    def recall(buf, fs, kind="train"):
        return evaluate_recall(buf, fs, kind, first_question_only=True, with_nll=False).recall

    resid_items = [f.to_item() for f in resid_f]
    ltm, both = cart.memory(), cart.memory(residual=resid_items)
    stm_resid = STMBuffer(lm)
    stm_resid.extend(resid_items)
    text = general_text()
    row = {
        "name": args.name, "split": args.split, "facts": [lo + 1, hi], "n_cart": len(cart_f), "n_resid": len(resid_f),
        "config": asdict(cfg), "seconds": run.seconds, "final_loss": run.train.losses[-1],
        "kind_loss_last50": {k: sum(v[-50:]) / len(v[-50:]) for k, v in run.train.kind_losses.items()},
        "ltm_train": recall(ltm, cart_f), "ltm_heldout": recall(ltm, cart_f, "heldout"),
        "both_cart_train": recall(both, cart_f), "both_resid_train": recall(both, resid_f),
        "both_resid_heldout": recall(both, resid_f, "heldout"),
        "stm_resid_train": recall(stm_resid, resid_f), "stm_resid_heldout": recall(stm_resid, resid_f, "heldout"),
        "nll_base": text_nll(STMBuffer(lm), text), "nll_ltm": text_nll(ltm, text),
        "nll_both": text_nll(both, text), "wall_s": time.perf_counter() - t0, "machine": machine(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()
                      if k not in ("config", "machine")}, indent=1))


if __name__ == "__main__":
    main()
