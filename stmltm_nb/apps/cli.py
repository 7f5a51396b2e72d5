"""The ``stmltm`` command line: ``stmltm demo`` runs the main job on the default model."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from stmltm_nb.apps.demo import run_demo
    from stmltm_nb.env import fast

    res = run_demo(args.model, out_dir=args.out, n_facts=args.facts, steps=args.steps, fast=args.fast or fast())
    d = res["decision"]
    print(("CONSOLIDATE" if d["consolidate"] else "WAIT") + f" — {d['explanation']}")
    for r in res["comparison"]:
        if r["questions"] in ("train", "heldout"):
            print(f"  {r['mode']:<26} {r['questions']:<8} recall {r['recall']:.2f}")
    return 0


def _measure(args: argparse.Namespace) -> int:
    from stmltm_nb.apps.measure_job import run_measurements
    from stmltm_nb.env import fast

    res = run_measurements(args.model, fast=args.fast or fast(), n_facts=args.facts, out=args.out, resume=args.resume)
    print(f"done in {res['total_seconds']:.0f} s; best recall fit: {res['recall']['best_fit']}; "
          f"c_upd = {res['consolidation']['c_upd_s']:.0f} s")
    return 0


def _decide(args: argparse.Namespace) -> int:
    import json

    from stmltm_nb.decision.switching import CostModel, RecallModel, SwitchingInputError, SwitchInputs, decide

    try:
        if args.json:
            from pathlib import Path

            d = json.loads(Path(args.json).read_text())
            cost = CostModel(**d.pop("cost", {}))
            recall = RecallModel(**d.pop("recall", {}))
            x = SwitchInputs(cost=cost, recall=recall, **d)
        else:
            x = SwitchInputs(n=args.n, Q=args.Q, c_upd=args.c_upd, r_cart=args.r_cart,
                             cost=CostModel(args.kappa0, args.kappa1, args.kappa2),
                             recall=RecallModel(args.recall, q0=args.q0, rho=args.rho, nu=args.nu, n50=args.n50, k=args.k),
                             q_cart=args.q_cart, lam=args.lam, eta=args.eta, gamma=args.gamma, tau=args.tau,
                             m=args.m, m_star=args.m_star, snr=args.snr, g_mdl=args.g_mdl)
        dec = decide(x)
    except (SwitchingInputError, TypeError, ValueError, OSError) as e:
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
    from pathlib import Path

    from stmltm_nb.decision.controller import Controller, ControllerConfig
    from stmltm_nb.decision.curves import load_curves
    from stmltm_nb.io import atomic_write_text
    from stmltm_nb.memory.config import ConsolidationConfig
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.models import load_model

    lm = load_model(args.model)
    allf = load_facts(contradictions=True)
    base = [f for f in allf if not f.supersedes][: args.items]
    contra = [f for f in allf if f.supersedes and any(b.id == f.supersedes for b in base)]
    stream = base[: len(base) // 2] + contra + base[len(base) // 2 :]  # contradictions arrive mid-stream
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="stmltm-stream-"))
    knobs = {"check_every": args.check_every, "m_floor": 16, "lam": args.lam, "tau": args.tau,
             "queries_per_item": args.queries_per_item, "snr_gate": not args.no_snr_gate}
    try:  # priors from the measured curves of this model when they exist
        config = ControllerConfig.from_curves(load_curves(args.curves), **knobs)
        print(f"priors from {args.curves or 'data/measured_curves.json'}", flush=True)
    except FileNotFoundError:
        config = ControllerConfig(**knobs)
    ccfg = ConsolidationConfig(p=args.p, steps=args.steps if args.steps else ConsolidationConfig.steps)
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
    summary = {"event": "summary", "items": len(ctl.items), "versions": ctl.state["version"],
               "absorbed": len(ctl.absorbed_ids()), "residual": len(ctl.residual()),
               "superseded": len(superseded_ids(ctl.items)), "lost": len(lost),
               "commits": sum(e["event"] == "commit" for e in ctl.events()),
               "rollbacks": sum(e["event"] == "rollback" for e in ctl.events())}
    ctl.event("summary", **{k: v for k, v in summary.items() if k != "event"})
    print(json.dumps(summary))
    if args.out:
        atomic_write_text(args.out, (root / "events.jsonl").read_text())
        print(f"event log copied to {args.out}")
    if not args.root:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if not lost else 1


def _notebooks(args: argparse.Namespace) -> int:
    from pathlib import Path

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
    m.add_argument("--out", default="data/measured_curves.json", help="output JSON path")
    m.add_argument("--facts", type=int, default=64, help="facts consolidated into the cartridge")
    m.add_argument("--fast", action="store_true", help="small sizes (also when STMLTM_FAST=1)")
    m.add_argument("--resume", action="store_true", help="keep sections already in --out and run the rest")
    m.set_defaults(func=_measure)

    c = sub.add_parser("decide", help="evaluate the switching inequality and print every term",
                       description="Exit status: 0 consolidate, 1 wait, 2 bad input.")
    c.add_argument("--json", help="a JSON file with the SwitchInputs fields (cost and recall as objects)")
    for name, default, helptext in [
        ("n", 64.0, "STM items"), ("Q", 1000.0, "future queries"), ("c_upd", 600.0, "update cost, s"),
        ("r_cart", 0.01, "cartridge overhead, s/query"), ("kappa0", 0.0, "c_ctx intercept, s"),
        ("kappa1", 0.001, "c_ctx slope, s/item"), ("kappa2", 0.0, "c_ctx curvature, s/item²"),
        ("q0", 1.0, "recall at n→0"), ("rho", 0.0, "linear recall slope"), ("nu", 50.0, "exponential scale"),
        ("n50", 10.0, "hyperbolic/Hill half-recall size"), ("k", 1.0, "Hill exponent"),
        ("q_cart", 0.9, "cartridge recall"), ("lam", 1.0, "s per unit loss"), ("eta", 0.0, "hysteresis"),
        ("gamma", 0.0, "required quality margin"), ("tau", 1.0, "SNR threshold"),
    ]:
        c.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, default=default, help=helptext)
    for name in ("m", "m_star", "snr", "g_mdl"):
        c.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, default=None)
    c.add_argument("--recall", default="hyperbolic", choices=["linear", "exponential", "hyperbolic", "hill"])
    c.add_argument("--as-json", action="store_true", help="also print the decision as JSON")
    c.set_defaults(func=_decide)

    st = sub.add_parser("stream", help="run the controller on the default model over a stream of shipped facts")
    st.add_argument("--model", default="default")
    st.add_argument("--items", type=int, default=104, help="base facts in the stream (contradictions are added)")
    st.add_argument("--root", help="controller folder (default: a temporary one)")
    st.add_argument("--out", default="data/controller_events.jsonl", help="copy of the event log")
    st.add_argument("--check-every", type=int, default=8)
    st.add_argument("--lam", type=float, default=5.0, help="seconds per wrong answer")
    st.add_argument("--queries-per-item", type=float, default=50.0, help="expected queries per ingested item")
    st.add_argument("--tau", type=float, default=1.0, help="SNR threshold of gate G2")
    st.add_argument("--no-snr-gate", action="store_true", help="do not measure SNR online (G2 unmeasured)")
    st.add_argument("--curves", help="measured curves JSON for the priors (default: data/measured_curves.json)")
    st.add_argument("--p", type=int, default=128)
    st.add_argument("--steps", type=int, default=None, help="training steps (default: ConsolidationConfig)")
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
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
