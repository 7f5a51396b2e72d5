"""``stmltm consolidate NOTES --out DIR`` and ``stmltm ask DIR "question"``: your notes as a cartridge folder, and
questions to it. Every argument is checked before the model loads; a bad one exits 2 and writes nothing."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from stmltm_nb.apps.cli_args import (
    UsageError,
    check_notes_fit,
    device_arg,
    fresh_out_dir,
    notes_arg,
    preflight_cache,
    questions_arg,
    usage_check,
)

if TYPE_CHECKING:
    from stmltm_nb.models import LoadedModel


def _load(args: argparse.Namespace) -> LoadedModel:
    from stmltm_nb.models import load_model

    return load_model(args.model, device=args.device)


def consolidate_cmd(args: argparse.Namespace) -> int:
    from stmltm_nb.apps.own_notes import consolidate_notes
    from stmltm_nb.env import fast
    from stmltm_nb.memory.config import ConsolidationConfig

    notes = notes_arg(args.notes)
    fresh_out_dir(args.out, create=False)  # checked now, created only after every other check passed
    args.device = device_arg(args.device)
    questions_arg(args.questions)
    steps = args.steps if args.steps is not None else (20 if args.fast or fast() else ConsolidationConfig.steps)
    try:
        cfg = ConsolidationConfig(p=args.p, steps=steps)
    except ValueError as e:
        raise UsageError(str(e)) from e
    preflight_cache()
    check_notes_fit(notes, args.model)
    out = fresh_out_dir(args.out)
    lm = _load(args)
    report = consolidate_notes(lm, notes, out, cfg, k=args.questions, progress=not args.quiet)
    for r in report["rows"]:
        held = "n/a" if r["heldout"] is None else f"{r['heldout']:.2f}"
        print(f"  {r['memory']:<28} held-out recall {held}")
    print(f"cartridge written to {out} (report: {out / 'report.md'})")
    return 0


def ask_cmd(args: argparse.Namespace) -> int:
    from stmltm_nb.apps.own_notes import ask
    from stmltm_nb.memory.cartridge_files import CartridgeError, read_meta

    try:
        read_meta(args.folder)  # a folder that is not a cartridge fails before the model loads
    except CartridgeError as e:
        raise UsageError(str(e)) from e
    usage_check(bool(args.question.strip()), "the question is empty")
    residual = notes_arg(args.notes) if args.notes else []
    args.device = device_arg(args.device)
    check_notes_fit(residual, args.model)
    lm = _load(args)
    try:
        answers = ask(lm, args.folder, args.question, residual, compare=args.compare)
    except CartridgeError as e:
        raise UsageError(str(e)) from e
    if args.as_json:
        print(json.dumps(answers, ensure_ascii=False, indent=1))
    else:
        for label, text in answers.items():
            text = text or "(empty answer)"
            print(f"{label}: {text}" if len(answers) > 1 else text)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``consolidate`` and ``ask`` sub-commands."""
    c = sub.add_parser("consolidate", help="train a cartridge on your notes (.txt: one per line, or .jsonl)")
    c.add_argument("notes", help="a .txt (one note per line) or .jsonl file (text, id, answer, questions, ...)")
    c.add_argument("--out", required=True, help="the cartridge folder to create (must not exist, or be empty)")
    c.add_argument("--model", default="default", help="'default' (embedded SmolLM2-135M), a local folder or Hub id")
    c.add_argument("--device", default="cpu", help="cpu (default), auto (CUDA, then MPS, else CPU), cuda or mps")
    c.add_argument("--questions", type=int, default=2, help="training questions per note (self-study fills in)")
    c.add_argument("--p", type=int, default=128, help="cartridge tokens")
    c.add_argument("--steps", type=int, default=None, help="training steps (default: ConsolidationConfig)")
    c.add_argument("--fast", action="store_true", help="20 training steps (also when STMLTM_FAST=1)")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.set_defaults(func=consolidate_cmd)

    a = sub.add_parser("ask", help="ask a cartridge folder a question (+ residual notes in STM)")
    a.add_argument("folder", help="a folder written by `stmltm consolidate`")
    a.add_argument("question")
    a.add_argument("--notes", help="newer notes (.txt/.jsonl) served in STM on top of the cartridge")
    a.add_argument("--compare", action="store_true", help="also answer from STM only and from no memory")
    a.add_argument("--model", default="default")
    a.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or mps")
    a.add_argument("--as-json", action="store_true", help="print the answers as one JSON object")
    a.set_defaults(func=ask_cmd)


__all__ = ["add_parsers", "consolidate_cmd", "ask_cmd", "UsageError"]
