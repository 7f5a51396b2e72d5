"""The ``stmltm`` command line: ``stmltm demo`` runs the main job on the default model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from stmltm_nb.apps.cli_args import (
    UsageError,
    check_notes_fit,
    device_arg,
    notes_arg,
    output_path,
    preflight_cache,
    usage_check,
)
from stmltm_nb.apps.cli_notes import add_parsers as add_note_parsers
from stmltm_nb.apps.cli_stream import cmd_stream


def _demo(args: argparse.Namespace) -> int:
    from stmltm_nb.apps.demo import run_demo
    from stmltm_nb.decision.switching import verdict
    from stmltm_nb.env import fast

    _check_demo_args(args)
    res = run_demo(args.model, out_dir=args.out, n_facts=args.facts, steps=args.steps, fast=args.fast or fast(),
                   full=args.full)
    d = res["decision"]
    print(f"{verdict(d['consolidate'], d.get('arm', 'stm'))} — {d['explanation']}")
    for r in res["comparison"]:
        if r["questions"] in ("train", "heldout"):
            print(f"  {r['mode']:<26} {r['questions']:<8} recall {r['recall']:.2f}")
    return 0


def _check_demo_args(args: argparse.Namespace) -> None:
    """Validate ``stmltm demo`` arguments before the model loads: sizes, the report folder, the cache folder."""
    from stmltm_nb.io import UnwritableDirError, ensure_writable_dir
    from stmltm_nb.memory.config import ConsolidationConfig

    usage_check(args.facts is None or args.facts >= 1, f"--facts must be >= 1, got {args.facts}")
    try:
        if args.steps is not None:  # None: the demo size's steps
            ConsolidationConfig(steps=args.steps)
    except ValueError as e:
        raise UsageError(f"--steps: {e}") from e
    out = Path(args.out).expanduser()
    usage_check(not out.exists() or out.is_dir(), f"--out {out} exists and is not a folder")
    preflight_cache()
    try:
        ensure_writable_dir(out)
    except UnwritableDirError as e:
        raise UsageError(f"--out: {e}") from e


def _measure(args: argparse.Namespace) -> int:
    from stmltm_nb.apps.measure_job import run_measurements
    from stmltm_nb.env import fast

    recipe = _recipe_arg(args.set or [])
    notes = notes_arg(args.notes) if args.notes else None
    device = device_arg(args.device)
    out = _check_measure_args(args, recipe, None if notes is None else len(notes))
    if notes is not None:
        check_notes_fit(notes, args.model)
    res = run_measurements(args.model, fast=args.fast or fast(), n_facts=args.facts, out=out, resume=args.resume,
                           notes=notes, device=device, split=args.split,
                           skip=args.skip or (), recipe=recipe, cartridges_only=args.cartridges_only,
                           ask_batch=args.ask_batch, **({"seeds": args.seeds} if args.seeds else {}))
    if args.cartridges_only:
        from stmltm_nb.metrics.comparison import ci_text

        rows = "; ".join(f"{r['mode']} {ci_text(r['recall_cart'], r['recall_cart_lo'], r['recall_cart_hi'])}"
                         for r in res["comparison"] if r["questions"] == "heldout")
        print(f"done in {res['total_seconds']:.0f} s (cartridges only); held-out recall of the cartridge's facts: "
              f"{rows or 'not measured'}")
    else:
        print(f"done in {res['total_seconds']:.0f} s; best recall fit: {res['recall']['best_fit']}; "
              f"c_upd = {res['consolidation']['c_upd_s']:.0f} s")
    return 0


def _recipe_arg(pairs: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE ...``: recipe overrides, parsed and type-checked before anything loads (a bad one: exit
    2); how they fit the other arguments is :func:`~stmltm_nb.apps.measure_job.check_run_args`'s."""
    from stmltm_nb.memory.config import parse_overrides

    try:
        recipe = parse_overrides(pairs)
    except ValueError as e:
        raise UsageError(f"--set: {e}") from e
    return recipe


def _check_measure_args(args: argparse.Namespace, recipe: dict[str, Any], n_notes: int | None) -> Path:
    """Validate ``stmltm measure`` arguments before the model loads (``n_notes``: the notes given with ``--notes``,
    None for the shipped facts); returns the output path."""
    import json

    usage_check(args.facts >= 1, f"--facts must be >= 1, got {args.facts}")
    usage_check(bool(args.notes) or args.facts + 16 <= 104, f"--facts {args.facts}: the consolidated facts and 16 residual "
                                                      f"ones must fit one split of 104 shipped facts (at most 88)")
    from stmltm_nb.apps.measure_job import check_run_args

    try:
        check_run_args(split=args.split, seeds=args.seeds or (0,), skip=args.skip or (), recipe=recipe,
                       cartridges_only=args.cartridges_only, ask_batch=args.ask_batch, n_notes=n_notes)
    except ValueError as e:
        raise UsageError(f"stmltm measure: {e}") from e
    out = output_path(args.out, "measured_curves.json")
    if args.cartridges_only:
        from stmltm_nb.decision.curves import curves_path

        usage_check(out != Path(curves_path()).resolve(),
                    f"--cartridges-only writes no curves for the rule: not into the shipped {out}")
    if args.resume and out.exists():
        try:
            kept = json.loads(out.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsageError(f"--resume: cannot read {out} ({e})") from e
        usage_check(isinstance(kept, dict), f"--resume: {out} does not hold a JSON object")
        usage_check(kept.get("recipe", {}) == recipe, f"--resume: {out} was measured with the recipe overrides "
                                                      f"{kept.get('recipe', {})}, not {recipe} (--set)")
    preflight_cache()
    return out


def _decide(args: argparse.Namespace) -> int:
    from stmltm_nb.decision.inputs import flatten, given_flags, inputs_from, read_json
    from stmltm_nb.decision.switching import SwitchingInputError, decide, verdict

    try:  # one schema: the measured curves (if any), then the JSON file, then the flags given, then defaults
        values = _curves_values(args.curves) if args.curves else {}
        values.update(flatten(read_json(args.json), args.json) if args.json else {})
        values.update(given_flags(args))
        x = inputs_from(None, values, source=args.json or args.curves or "flags")
        dec = decide(x)
    except SwitchingInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{verdict(dec.consolidate, dec.arm)} — {dec.explanation}")
    print(f"arm: {dec.arm}; " + "; ".join(f"{k} {a.cost_s:.4g} s/query, recall {a.q:.2f} [{a.lo:.2f}, {a.hi:.2f}]"
                                          for k, a in dec.arms.items()))
    print("terms (seconds unless noted):")
    for k, v in dec.terms.items():
        print(f"  {k:>12} = {v:.6g}")
    print("gates:")
    for g in dec.gates:
        print(f"  {g.name:<16} {g.state:<12} {g.rule}: value={g.value} threshold={g.threshold}")
    if dec.not_evaluated:
        print(f"not evaluated (not measured): {', '.join(dec.not_evaluated)}")
    if args.as_json:
        print(json.dumps(dec.to_json(), indent=2, default=str))
    return 0 if dec.consolidate else 1


def _curves_values(path: str) -> dict:
    """``decide --curves FILE``: the inputs a measured-curves file supplies (a bad file: exit 2)."""
    from stmltm_nb.decision.curves import curve_values
    from stmltm_nb.decision.inputs import check_curves
    from stmltm_nb.decision.switching import SwitchingInputError

    try:
        return curve_values(check_curves(json.loads(Path(path).read_text()), source=path))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SwitchingInputError(f"--curves {path}: {e}") from e


def build_parser() -> argparse.ArgumentParser:
    """The ``stmltm`` parser; the switching inputs' defaults (``decide``'s flags, ``stream``'s ``--lam`` and
    ``--tau``) come from :data:`~stmltm_nb.decision.defaults.DEFAULTS`, ``demo``'s sizes from
    :mod:`~stmltm_nb.apps.demo`."""
    from stmltm_nb.apps.demo import DEMO, DEMO_FULL
    from stmltm_nb.decision.defaults import DEFAULTS
    from stmltm_nb.decision.inputs import add_flags
    from stmltm_nb.metrics.comparison import MODES

    p = argparse.ArgumentParser(prog="stmltm", description="STM vs LTM memory for language models.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="the main job: STM curves, one consolidation, the rule, STM vs LTM; writes a report")
    d.add_argument("--model", default="default", help="'default' (embedded SmolLM2-135M), a local folder or Hub id")
    d.add_argument("--out", default="report", help="folder for report.html and report.json")
    d.add_argument("--facts", type=int, default=None,
                   help=f"facts consolidated into the cartridge (default {DEMO.facts}; {DEMO_FULL.facts} with --full)")
    d.add_argument("--steps", type=int, default=None,
                   help=f"training steps (default {DEMO.steps}; {DEMO_FULL.steps} with --full)")
    d.add_argument("--full", action="store_true",
                   help=f"the big version: {DEMO_FULL.facts} facts, {DEMO_FULL.steps} steps, every memory mode in the "
                        f"STM-vs-LTM table and {DEMO_FULL.min_questions} questions per STM size (the default: "
                        f"{len(DEMO.modes or MODES)} modes, {DEMO.min_questions} questions)")
    d.add_argument("--fast", action="store_true", help="tiny sizes (also when STMLTM_FAST=1)")
    d.set_defaults(func=_demo)

    m = sub.add_parser("measure", help="measure every Key-Metrics signal on a model; write one JSON file")
    m.add_argument("--model", default="default")
    m.add_argument("--out", help="output JSON path or folder (default: ./measured_curves.json; a shipped data file "
                                 "is replaced only when named here, as `make measure` does)")
    m.add_argument("--facts", type=int, default=64, help="facts consolidated into the cartridge")
    m.add_argument("--fast", action="store_true", help="small sizes (also when STMLTM_FAST=1)")
    m.add_argument("--resume", action="store_true", help="keep sections already in --out and run the rest")
    m.add_argument("--notes", help="measure on your notes (.txt/.jsonl) instead of the shipped facts")
    m.add_argument("--split", choices=("tune", "report", "final"), default="tune",
                   help="shipped facts consolidated: tune = facts 1-104 (recipes chosen there), report = 105-208; "
                        "final = the sealed final split, read once when the recipe is frozen (never to choose)")
    m.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="training seeds of the cartridge (default 0 1: headline numbers run on two)")
    m.add_argument("--skip", action="append", metavar="MODE",
                   help="a memory mode without a cartridge not to ask (repeatable), e.g. 'STM (own chunk, oracle)'")
    m.add_argument("--device", default="cpu", help="cpu (default), auto (CUDA, then MPS, else CPU), cuda or mps")
    m.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE",
                   help="recipe overrides of the cartridges measured (ConsolidationConfig fields), e.g. --set "
                        "standins=pool residual_min=0: a lever tried on the tuning split, recorded under 'recipe'")
    m.add_argument("--cartridges-only", action="store_true",
                   help="train and ask the cartridges (LTM, LTM + residual STM, retention) and stop: a lever's run, "
                        "without the recipe-free curves; the file holds no curves for the rule")
    m.add_argument("--ask-batch", type=int, default=1, metavar="N",
                   help="with --cartridges-only: answer N questions at once (the same greedy answers, several times "
                        "faster; seconds per query become throughput)")
    m.set_defaults(func=_measure)

    c = sub.add_parser("decide", help="evaluate the switching inequality and print every term",
                       description="Exit status: 0 consolidate, 1 wait, 2 bad input.")
    c.add_argument("--curves", help="a measured-curves JSON (`stmltm measure`, also --notes): c_upd, r_cart, the cost "
                                     "and recall fits and q_cart from it; --json and flags override")
    c.add_argument("--json", help="a JSON file with the SwitchInputs fields (cost and recall as objects); flags given "
                                   "as well override its values; missing fields take the flags' defaults")
    add_flags(c)
    c.add_argument("--as-json", action="store_true", help="also print the decision as JSON")
    c.set_defaults(func=_decide)

    st = sub.add_parser("stream", help="run the controller over a stream: the shipped facts, or your notes file")
    st.add_argument("notes", nargs="?", help="your notes (.txt/.jsonl), streamed in file order (default: shipped facts)")
    st.add_argument("--model", default="default")
    st.add_argument("--device", default="cpu", help="cpu (default), auto (CUDA, then MPS, else CPU), cuda or mps")
    st.add_argument("--questions", type=int, default=2, help="training questions per note (self-study)")
    st.add_argument("--items", type=int, default=104, help="base facts in the stream (contradictions are added)")
    st.add_argument("--root", help="controller folder (default: a temporary one)")
    st.add_argument("--out", help="copy of the event log, a file or folder (default: ./controller_events.jsonl; a "
                                  "shipped data file is replaced only when named here)")
    st.add_argument("--check-every", type=int, default=8)
    st.add_argument("--lam", type=float, default=DEFAULTS.lam,
                    help=f"seconds per wrong answer (default {DEFAULTS.lam}, the same λ as `stmltm decide`)")
    st.add_argument("--queries-per-item", type=float, default=50.0, help="expected queries per ingested item")
    st.add_argument("--tau", type=float, default=DEFAULTS.tau,
                    help=f"SNR threshold of gate G2 (default {DEFAULTS.tau})")
    st.add_argument("--no-snr-gate", action="store_true", help="do not measure SNR online (G2 unmeasured)")
    st.add_argument("--curves", help="measured curves JSON for the priors (default: data/measured_curves.json)")
    st.add_argument("--p", type=int, default=128)
    st.add_argument("--steps", type=int, default=None, help="training steps (default: ConsolidationConfig)")
    st.add_argument("--fast", action="store_true", help="16 facts, p <= 32, 20 steps unless given (also STMLTM_FAST=1)")
    st.set_defaults(func=cmd_stream)
    add_note_parsers(sub)

    return p


def main(argv: list[str] | None = None) -> int:
    from stmltm_nb.env import silence_foreign_deprecations

    silence_foreign_deprecations()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
