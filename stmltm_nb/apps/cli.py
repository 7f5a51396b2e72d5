"""The ``stmltm`` command line: ``stmltm demo`` runs the main job on the default model."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


class UsageError(Exception):
    """A bad command-line argument, found before any model loads (exit status 2)."""


def _shipped_dirs() -> set[Path]:
    """The package's shipped data folders (this checkout's ``data/`` and ``$STMLTM_DATA``)."""
    dirs = {(Path(__file__).resolve().parents[2] / "data").resolve()}
    try:
        from stmltm_nb.shipped import data_dir

        dirs.add(data_dir().resolve())
    except FileNotFoundError:
        pass
    return dirs


def _out_path(arg: str | None, default_name: str) -> Path:
    """Where a command writes its result: ``--out`` (a file, or a folder to put ``default_name`` in), else
    ``default_name`` in the working folder. A shipped data file is overwritten only when ``--out`` names that
    very file; the parent folder must be writable (checked now, before the model loads)."""
    from stmltm_nb.io import UnwritableDirError, ensure_writable_dir

    explicit = arg is not None and not Path(arg).is_dir()
    path = (Path(arg) if explicit else Path(arg or ".") / default_name).expanduser().resolve()
    if not explicit and path.exists() and any(d in path.parents for d in _shipped_dirs()):
        raise UsageError(f"refusing to overwrite the shipped file {path}; to replace it, name it: --out {path}")
    if path.is_dir():
        raise UsageError(f"--out {path} is a folder")
    try:
        ensure_writable_dir(path.parent)
    except UnwritableDirError as e:
        raise UsageError(f"--out: {e}") from e
    return path


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise UsageError(message)


def _positive(name: str, v: float, allow_zero: bool = False) -> None:
    _need(math.isfinite(v) and (v >= 0 if allow_zero else v > 0),
          f"--{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {v}")


def _preflight_cache() -> None:
    """The teacher targets and the converted model go to the cache folder: prove it is writable now."""
    from stmltm_nb.models import CacheDirError, ensure_cache_writable

    try:
        ensure_cache_writable()
    except CacheDirError as e:
        raise UsageError(str(e)) from e


def _demo(args: argparse.Namespace) -> int:
    from stmltm_nb.apps.demo import run_demo
    from stmltm_nb.env import fast

    _check_demo_args(args)
    res = run_demo(args.model, out_dir=args.out, n_facts=args.facts, steps=args.steps, fast=args.fast or fast())
    d = res["decision"]
    print(("CONSOLIDATE" if d["consolidate"] else "WAIT") + f" — {d['explanation']}")
    for r in res["comparison"]:
        if r["questions"] in ("train", "heldout"):
            print(f"  {r['mode']:<26} {r['questions']:<8} recall {r['recall']:.2f}")
    return 0


def _check_demo_args(args: argparse.Namespace) -> None:
    """Validate ``stmltm demo`` arguments before the model loads: sizes, the report folder, the cache folder."""
    from stmltm_nb.io import UnwritableDirError, ensure_writable_dir
    from stmltm_nb.memory.config import ConsolidationConfig

    _need(args.facts >= 1, f"--facts must be >= 1, got {args.facts}")
    try:
        ConsolidationConfig(steps=args.steps)
    except ValueError as e:
        raise UsageError(f"--steps: {e}") from e
    out = Path(args.out).expanduser()
    _need(not out.exists() or out.is_dir(), f"--out {out} exists and is not a folder")
    _preflight_cache()
    try:
        ensure_writable_dir(out)
    except UnwritableDirError as e:
        raise UsageError(f"--out: {e}") from e


def _measure(args: argparse.Namespace) -> int:
    from stmltm_nb.apps.measure_job import run_measurements
    from stmltm_nb.env import fast

    out = _check_measure_args(args)
    res = run_measurements(args.model, fast=args.fast or fast(), n_facts=args.facts, out=out, resume=args.resume)
    print(f"done in {res['total_seconds']:.0f} s; best recall fit: {res['recall']['best_fit']}; "
          f"c_upd = {res['consolidation']['c_upd_s']:.0f} s")
    return 0


def _check_measure_args(args: argparse.Namespace) -> Path:
    """Validate ``stmltm measure`` arguments before the model loads; returns the output path."""
    import json

    _need(args.facts >= 1, f"--facts must be >= 1, got {args.facts}")
    out = _out_path(args.out, "measured_curves.json")
    if args.resume and out.exists():
        try:
            _need(isinstance(json.loads(out.read_text()), dict), f"--resume: {out} does not hold a JSON object")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsageError(f"--resume: cannot read {out} ({e})") from e
    _preflight_cache()
    return out


def _decide(args: argparse.Namespace) -> int:
    import json

    from stmltm_nb.decision.inputs import given_flags, inputs_from, read_json
    from stmltm_nb.decision.switching import SwitchingInputError, decide

    try:  # one schema: the JSON file (if any), then the flags given, then the same defaults either way
        x = inputs_from(read_json(args.json) if args.json else None, given_flags(args), source=args.json or "flags")
        dec = decide(x)
    except SwitchingInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(("CONSOLIDATE" if dec.consolidate else "WAIT") + f" — {dec.explanation}")
    print("terms (seconds unless noted):")
    for k, v in dec.terms.items():
        print(f"  {k:>12} = {v:.6g}")
    print("gates:")
    for g in dec.gates:
        state = "pass" if g.passed else "BLOCK"
        note = "" if g.measured else " (not measured)"
        print(f"  {g.name:<16} {state:<5} {g.rule}: value={g.value} threshold={g.threshold}{note}")
    if args.as_json:
        print(json.dumps(dec.to_json(), indent=2, default=str))
    return 0 if dec.consolidate else 1


def _stream(args: argparse.Namespace) -> int:
    import json
    import shutil
    import tempfile

    from stmltm_nb.decision.controller import Controller, ControllerConfig
    from stmltm_nb.decision.curves import load_curves
    from stmltm_nb.io import atomic_write_text
    from stmltm_nb.memory.config import ConsolidationConfig
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.models import load_model

    root_arg, out = _check_stream_args(args)
    allf = load_facts(contradictions=True)
    base = [f for f in allf if not f.supersedes][: args.items]
    contra = [f for f in allf if f.supersedes and any(b.id == f.supersedes for b in base)]
    stream = base[: len(base) // 2] + contra + base[len(base) // 2 :]  # contradictions arrive mid-stream
    root = root_arg or Path(tempfile.mkdtemp(prefix="stmltm-stream-"))
    knobs = {"check_every": args.check_every, "m_floor": 16, "lam": args.lam, "tau": args.tau,
             "queries_per_item": args.queries_per_item, "snr_gate": not args.no_snr_gate}
    try:  # priors from the measured curves of this model when they exist
        config = ControllerConfig.from_curves(load_curves(args.curves), **knobs)
        print(f"priors from {args.curves or 'data/measured_curves.json'}", flush=True)
    except FileNotFoundError:
        config = ControllerConfig(**knobs)
    ccfg = ConsolidationConfig(p=args.p, steps=args.steps if args.steps is not None else ConsolidationConfig.steps)
    lm = load_model(args.model)  # after every argument is checked: a bad one never costs a model load
    ctl = Controller(lm.model, lm.tokenizer, root, {f.id: f.train_questions for f in allf},
                     probes={f.id: (f.heldout_question, f.answer) for f in allf},
                     config=config, consolidation=ccfg, progress=True)
    for i, f in enumerate(stream):
        if f.id in {it.id for it in ctl.items}:
            continue
        ev = ctl.ingest(f.to_item(time=float(i)))
        if ev is not None:
            print(f"item {i + 1:>3}: {'CONSOLIDATE' if ev['consolidate'] else 'wait'} — {ev['explanation']}", flush=True)
    from stmltm_nb.metrics.governance import superseded_ids

    lost = ctl.lost_ids()
    served = _contradictions_served(ctl, contra, {f.id: f for f in allf})
    ctl.event("contradictions", served=served)
    summary = {"event": "summary", "items": len(ctl.items), "versions": ctl.state["version"],
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
    _need(args.items >= 1 and args.check_every >= 1, "--items and --check-every must be >= 1")
    _need(args.p >= 2, f"--p must be >= 2 (cartridge tokens), got {args.p}")
    _need(args.steps is None or args.steps >= 0, f"--steps must be >= 0, got {args.steps}")
    _positive("lam", args.lam, allow_zero=True)
    _positive("tau", args.tau)
    _positive("queries-per-item", args.queries_per_item)
    try:
        ConsolidationConfig(p=args.p, steps=args.steps if args.steps is not None else ConsolidationConfig.steps)
    except ValueError as e:
        raise UsageError(str(e)) from e
    if args.curves:
        try:
            _need(isinstance(load_curves(args.curves), dict), f"--curves {args.curves} does not hold a JSON object")
        except (FileNotFoundError, ValueError) as e:
            raise UsageError(f"--curves: {e}") from e
    root = None
    if args.root:
        root = Path(args.root).expanduser()
        _need(not root.exists() or root.is_dir(), f"--root {root} exists and is not a folder")
        try:
            ensure_writable_dir(root)
        except UnwritableDirError as e:
            raise UsageError(f"--root: {e}") from e
    out = _out_path(args.out, "controller_events.jsonl")
    _preflight_cache()
    return root, out


def _notebooks(args: argparse.Namespace) -> int:
    from stmltm_nb.apps.notebooks import build, notebook_dir, sources, sync_sources

    srcs = sources(notebook_dir())
    if args.only:
        srcs = [s for s in srcs if any(s.name.startswith(o) for o in args.only.split(","))]
    if args.sources_only:
        print("\n".join(sync_sources(srcs)) or "every notebook's cells already match its source")
        return 0
    build(srcs, execute=not args.no_execute, fast=args.fast, out_dir=Path(args.out) if args.out else None)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from stmltm_nb.decision.inputs import add_flags

    p = argparse.ArgumentParser(prog="stmltm", description="STM vs LTM memory for language models.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="the main job: STM curves, one consolidation, the rule, STM vs LTM; writes a report")
    d.add_argument("--model", default="default", help="'default' (embedded SmolLM2-135M), a local folder or Hub id")
    d.add_argument("--out", default="report", help="folder for report.html and report.json")
    d.add_argument("--facts", type=int, default=32, help="facts consolidated into the cartridge")
    d.add_argument("--steps", type=int, default=100, help="training steps")
    d.add_argument("--fast", action="store_true", help="tiny sizes (also when STMLTM_FAST=1)")
    d.set_defaults(func=_demo)

    m = sub.add_parser("measure", help="measure every Key-Metrics signal on a model; write one JSON file")
    m.add_argument("--model", default="default")
    m.add_argument("--out", help="output JSON path or folder (default: ./measured_curves.json; a shipped data file "
                                 "is replaced only when named here, as `make measure` does)")
    m.add_argument("--facts", type=int, default=64, help="facts consolidated into the cartridge")
    m.add_argument("--fast", action="store_true", help="small sizes (also when STMLTM_FAST=1)")
    m.add_argument("--resume", action="store_true", help="keep sections already in --out and run the rest")
    m.set_defaults(func=_measure)

    c = sub.add_parser("decide", help="evaluate the switching inequality and print every term",
                       description="Exit status: 0 consolidate, 1 wait, 2 bad input.")
    c.add_argument("--json", help="a JSON file with the SwitchInputs fields (cost and recall as objects); flags given "
                                   "as well override its values; missing fields take the flags' defaults")
    add_flags(c)
    c.add_argument("--as-json", action="store_true", help="also print the decision as JSON")
    c.set_defaults(func=_decide)

    st = sub.add_parser("stream", help="run the controller on the default model over a stream of shipped facts")
    st.add_argument("--model", default="default")
    st.add_argument("--items", type=int, default=104, help="base facts in the stream (contradictions are added)")
    st.add_argument("--root", help="controller folder (default: a temporary one)")
    st.add_argument("--out", help="copy of the event log, a file or folder (default: ./controller_events.jsonl; a "
                                  "shipped data file is replaced only when named here)")
    st.add_argument("--check-every", type=int, default=8)
    st.add_argument("--lam", type=float, default=5.0, help="seconds per wrong answer")
    st.add_argument("--queries-per-item", type=float, default=50.0, help="expected queries per ingested item")
    st.add_argument("--tau", type=float, default=1.0, help="SNR threshold of gate G2")
    st.add_argument("--no-snr-gate", action="store_true", help="do not measure SNR online (G2 unmeasured)")
    st.add_argument("--curves", help="measured curves JSON for the priors (default: data/measured_curves.json)")
    st.add_argument("--p", type=int, default=128)
    st.add_argument("--steps", type=int, default=None, help="training steps (default: ConsolidationConfig)")
    st.add_argument("--fast", action="store_true", help="16 facts, p <= 32, 20 steps unless given (also STMLTM_FAST=1)")
    st.set_defaults(func=_stream)

    nb = sub.add_parser("notebooks", help="execute the notebook sequence headless")
    nb.add_argument("--out", help="output folder (default: next to the sources, in place)")
    nb.add_argument("--only", help="comma-separated prefixes, e.g. 00,05")
    nb.add_argument("--fast", action="store_true", help="STMLTM_FAST=1 for the kernels")
    nb.add_argument("--no-execute", action="store_true", help="convert only")
    nb.add_argument("--sources-only", action="store_true",
                    help="copy the .py cell text into the committed .ipynb, keeping outputs (edits that change no result)")
    nb.set_defaults(func=_notebooks)
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
