"""The ``stmltm`` command line: ``stmltm demo`` runs the main job on the default model."""

from __future__ import annotations

import argparse
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_recall, spread
    from .facts import load_facts
    from .models import load_model
    from .stm import STMBuffer

    t0 = time.perf_counter()
    lm = load_model(args.model)
    print(f"model: {lm.name}, loaded in {time.perf_counter() - t0:.1f} s")
    facts = load_facts()
    sizes = [int(s) for s in args.sizes.split(",")]
    if max(sizes) > len(facts):
        print(f"error: at most {len(facts)} facts are shipped", file=sys.stderr)
        return 2
    buf = STMBuffer(lm.model, lm.tokenizer)
    print(f"{'n items':>8} {'STM tokens':>11} {'b tok/item':>11} {'recall':>7} {'answer NLL':>11} {'s/query':>8}")
    for n in sizes:
        while buf.n < n:
            buf.append(facts[buf.n].to_item())
        asked = spread(facts[:n], args.questions)
        r = evaluate_recall(buf, asked, "train", first_question_only=True)
        print(f"{n:>8} {buf.n_tokens:>11} {buf.b:>11.1f} {r.recall:>7.2f} {r.nll:>11.2f} {r.seconds_per_query:>8.3f}")
    ex = r.outputs[0]
    print(f"\nexample at n={sizes[-1]}: Q: {ex[0]}\n  gold: {ex[1]}\n  model: {ex[2]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stmltm", description="STM vs LTM memory for language models.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="fill STM with shipped facts on the default model; print recall and per-query time")
    d.add_argument("--model", default="default", help="'default' (embedded SmolLM2-135M), a local folder or Hub id")
    d.add_argument("--sizes", default="1,16,64", help="comma-separated STM sizes n (items)")
    d.add_argument("--questions", type=int, default=10, help="questions asked per size (spread over the items)")
    d.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
