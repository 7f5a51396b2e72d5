"""``stmltm stream``: the controller over a stream of shipped facts (contradictions mid-stream) or of your own
notes (``stmltm stream NOTES --root DIR``), resumable: a second run on the same ``--root`` skips what is logged."""

from __future__ import annotations

import argparse
from pathlib import Path

from stmltm_nb.apps.cli_args import (
    UsageError,
    check_notes_fit,
    check_positive,
    device_arg,
    notes_arg,
    output_path,
    preflight_cache,
    questions_arg,
    usage_check,
)


def cmd_stream(args: argparse.Namespace) -> int:
    import json
    import shutil
    import tempfile

    from stmltm_nb.decision.controller import Controller, ControllerConfig
    from stmltm_nb.decision.curves import load_curves
    from stmltm_nb.io import atomic_write_text
    from stmltm_nb.memory.config import ConsolidationConfig
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.memory.questions import questions_of
    from stmltm_nb.models import load_model

    notes = notes_arg(args.notes) if args.notes else None  # a bad file fails before any folder is made
    device = device_arg(args.device)
    questions_arg(args.questions)
    if notes is not None:
        check_notes_fit(notes, args.model)
    root_arg, out = _check_stream_args(args)
    root = root_arg or Path(tempfile.mkdtemp(prefix="stmltm-stream-"))
    knobs = {"check_every": args.check_every, "m_floor": 16, "lam": args.lam, "tau": args.tau,
             "queries_per_item": args.queries_per_item, "snr_gate": not args.no_snr_gate}
    try:  # priors from the measured curves of this model when they exist
        config = ControllerConfig.from_curves(load_curves(args.curves), **knobs)
        print(f"priors from {args.curves or 'data/measured_curves.json'}", flush=True)
    except FileNotFoundError:
        config = ControllerConfig(**knobs)
    ccfg = ConsolidationConfig(p=args.p, steps=args.steps if args.steps is not None else ConsolidationConfig.steps)
    lm = load_model(args.model, device=device)  # after every argument is checked: a bad one never costs a load
    if notes is None:  # the shipped facts, contradictions mid-stream
        allf = load_facts(contradictions=True)
        base = [f for f in allf if not f.supersedes][: args.items]
        contra = [f for f in allf if f.supersedes and any(b.id == f.supersedes for b in base)]
        stream = contradiction_stream(base, contra)
    else:  # your notes, in file order; self-study cached in the controller folder (a resumed run reuses it)
        from stmltm_nb.memory.study import study_notes

        allf = stream = study_notes(lm, notes, k=args.questions, cache=root / "study.json",
                                    progress=True)
        contra = []
    ctl = Controller(lm, root, questions_of(allf), config=config, consolidation=ccfg, progress=True)
    for i, f in enumerate(stream):
        if f.id in {it.id for it in ctl.items}:
            continue
        ev = ctl.ingest(f.to_item(time=float(i)) if notes is None else notes[i].to_item())
        if ev is not None:
            print(f"item {i + 1:>3}: {'CONSOLIDATE' if ev['consolidate'] else 'wait'} — {ev['explanation']}", flush=True)
    from stmltm_nb.metrics.governance import superseded_ids

    lost = ctl.lost_ids()
    served = _contradictions_served(ctl, contra, {f.id: f for f in allf})
    if contra:
        ctl.event("contradictions", served=served)
    summary = {"event": "summary", "items": len(ctl.items), "versions": ctl.state.version,
               "absorbed": len(ctl.absorbed_ids()), "residual": len(ctl.residual()),
               "superseded": len(superseded_ids(ctl.items)), "lost": len(lost),
               "commits": sum(e["event"] == "commit" for e in ctl.events()),
               "rollbacks": sum(e["event"] == "rollback" for e in ctl.events()),
               "contradictions": len(served), "contradictions_new_value": sum(r["new_value"] for r in served)}
    ctl.event("summary", **{k: v for k, v in summary.items() if k != "event"})
    ctl.close()
    print(json.dumps(summary))
    atomic_write_text(out, (root / "events.jsonl").read_text())
    print(f"event log copied to {out}")
    if not args.root:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if not lost else 1


def contradiction_stream(base: list, contra: list, gap: int = 8) -> list:
    """The facts ``base`` in order with each contradiction of ``contra`` inserted mid-stream, or ``gap`` items after
    the fact it contradicts when that comes later: a newer value always arrives after the value it replaces."""
    at = {f.id: i for i, f in enumerate(base)}
    pos = {c.id: min(len(base), max(len(base) // 2, at[c.supersedes] + 1 + gap)) for c in contra}
    out = []
    for i in range(len(base) + 1):
        out += [c for c in contra if pos[c.id] == i]
        out += base[i : i + 1]
    return out


def _contradictions_served(ctl, contra, by_id) -> list[dict]:
    """Ask the served memory (cartridge + residual STM) each contradicted fact's first training question: does it
    give the newer value? (Recall criterion: the answer string appears in the output.)"""
    from stmltm_nb.metrics.recall import answer_found

    rows = []
    for c in contra:
        q, out = c.train_questions[0], ctl.memory.answer(c.train_questions[0])
        rows.append({"id": c.id, "supersedes": c.supersedes, "question": q, "output": out, "new": c.answer,
                     "old": by_id[c.supersedes].answer, "new_value": answer_found(c.answer, out),
                     "old_value": answer_found(by_id[c.supersedes].answer, out)})
    return rows


def _check_stream_args(args: argparse.Namespace) -> tuple[Path | None, Path]:
    """Validate ``stmltm stream`` arguments before the model loads; returns (controller folder or None, log path)."""
    from stmltm_nb.decision.curves import load_curves
    from stmltm_nb.env import fast
    from stmltm_nb.io import UnwritableDirError, ensure_writable_dir
    from stmltm_nb.memory.config import ConsolidationConfig

    if args.fast or fast():  # a short stream: 16 facts, a small cartridge, few steps (flags given still count)
        args.items, args.p = min(args.items, 16), min(args.p, 32)
        args.steps = 20 if args.steps is None else args.steps
    usage_check(args.items >= 1 and args.check_every >= 1, "--items and --check-every must be >= 1")
    usage_check(args.p >= 2, f"--p must be >= 2 (cartridge tokens), got {args.p}")
    usage_check(args.steps is None or args.steps >= 0, f"--steps must be >= 0, got {args.steps}")
    check_positive("lam", args.lam, allow_zero=True)
    check_positive("tau", args.tau)
    check_positive("queries-per-item", args.queries_per_item)
    try:
        ConsolidationConfig(p=args.p, steps=args.steps if args.steps is not None else ConsolidationConfig.steps)
    except ValueError as e:
        raise UsageError(str(e)) from e
    if args.curves:
        try:
            usage_check(isinstance(load_curves(args.curves), dict), f"--curves {args.curves} does not hold a JSON object")
        except (FileNotFoundError, ValueError) as e:
            raise UsageError(f"--curves: {e}") from e
    root = None
    if args.root:
        root = Path(args.root).expanduser()
        usage_check(not root.exists() or root.is_dir(), f"--root {root} exists and is not a folder")
        try:
            ensure_writable_dir(root)
        except UnwritableDirError as e:
            raise UsageError(f"--root: {e}") from e
    out = output_path(args.out, "controller_events.jsonl")
    preflight_cache()
    return root, out
