"""Prose rendered from data, so that the numbers in notebook text and in the README cannot drift (no torch).

Development tooling of the checkout (``tools/``, not shipped in the wheel): it reads ``data/``, ``notebooks/`` and
``benchmarks/results/``; the package ``stmltm_nb`` never does.

A template is Markdown with placeholders ``{{ expr }}`` or ``{{ expr :fmt }}``. ``expr`` is a restricted
expression over the data sources of :func:`namespace` (``curves`` = ``data/measured_curves.json``, ``runtimes``,
...): names, ``.key`` / ``[key]`` access, numbers, ``+ - * / //`` and the calls ``round min max abs len``; anything
else is a :class:`TemplateError`. ``fmt`` is a Python format spec (``.2f``, ``,.0f``, ``+.2f``, ``.0%``) or one of
:data:`NAMED_FORMATS` (``minutes``: "about 5 minutes"; ``min``: "≈ 5.2" for a table column of minutes; ``sci``: "1e-3"); ``opt`` before
any spec (``opt.2f``) formats a null value as "not measured".

Notebook markdown cells are rendered by :func:`tools.notebooks.to_notebook` (the template is kept in the
cell's ``metadata["stmltm"]["template"]``); the README's blocks between ``<!-- stmltm:begin NAME -->`` and
``<!-- stmltm:end NAME -->`` are rendered by :mod:`tools.readme` from the templates in ``tools/readme_blocks.md``
(``make readme``). ``tests/test_prose.py`` re-renders both and compares.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stmltm_nb.decision.curves import half_recall_n
from stmltm_nb.metrics.probe import all_probe_results

ROOT = Path(__file__).resolve().parents[1]  # the checkout (README.md, notebooks/, benchmarks/)
RUNTIMES = ROOT / "notebooks" / "runtimes.json"
INCREMENTAL = ROOT / "benchmarks" / "results" / "incremental_tune.json"
POLICY = ROOT / "benchmarks" / "results" / "policy_regret.json"
PROBE = ROOT / "benchmarks" / "results" / "probe_recall.jsonl"
ROOFLINE = ROOT / "benchmarks" / "results" / "roofline.json"
RESULTS = ROOT / "benchmarks" / "results"
FIRST_RUN = ROOT / "benchmarks" / "results" / "first_run.json"
LEVERS = ROOT / "benchmarks" / "results"  # lever_tune_baseline.json and one lever_tune_<name>.json per lever

PLACEHOLDER = re.compile(r"\{\{(.+?)\}\}", re.S)
CALLS: dict[str, Callable] = {"round": round, "min": min, "max": max, "abs": abs, "len": len}
OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
       ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b}
ALLOWED = "names, .key and [key] access, numbers, + - * / //, round/min/max/abs/len"


class TemplateError(ValueError):
    """A placeholder that cannot be rendered: bad syntax, a forbidden construct, a missing key or data file."""


class _Runtimes(dict):
    """Seconds per notebook stem; a notebook never built in full (a new one, before its first build) is NaN,
    rendered "not measured yet" (the build re-renders its header with the time it just measured)."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> float:
        return float("nan")


def _minutes(s: float) -> str:
    if s != s:
        return "not measured yet"
    m = s / 60
    return "under 1 minute" if m < 1 else f"about {m:.0f} minute{'s' if round(m) != 1 else ''}"


def _min(s: float) -> str:
    if s != s:
        return "not measured yet"
    return "< 1" if s < 60 else f"≈ {s / 60:.1f}"


def _sci(x: float) -> str:
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + m[1].replace("+", "") + m[2], f"{x:.0e}")


NAMED_FORMATS: dict[str, Callable[[float], str]] = {"minutes": _minutes, "min": _min, "sci": _sci}
OPTIONAL = "opt"  # a spec "opt<spec>" formats like <spec>, and a missing value (null) as "not measured"


# ---- the data sources ---------------------------------------------------------------------------------------

def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def load_runtimes(path: Path | None = None) -> dict[str, Any]:
    """``notebooks/runtimes.json``: seconds per notebook of the last full build (``{}`` when absent)."""
    return _read_json(path or RUNTIMES) or {}


def namespace(curves: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The names a template may use. ``curves`` (the measured-curves JSON) and views of it:
    ``fits[family]``, ``comparison[mode][questions]``, ``retention[mode]`` (ΔNLL rows), ``versus[a][b]``
    (:func:`versus`), ``cell[mode][kind][part]`` (:func:`cells`), ``retrieval``, ``pooled[n]``,
    ``cost[n]``, ``n_max`` (:func:`half_recall_n`); ``runtimes[notebook stem]`` (seconds, last full build);
    ``recipe[name]`` (``data/ltm_recipe.jsonl``); ``incremental`` (``benchmarks/results/incremental_tune.json``);
    ``policy[set][scenario][rule id]`` (rows), ``policy_rules[id]``, ``policy_verdict``, ``policy_shipped``,
    ``roofline`` (``benchmarks/results/roofline.json``; ``roofline.phase[name]``, ``roofline.peak`` in GFLOP/s,
    ``roofline.cut_phase[name]`` for the cut timed beside it); ``cupd[name]`` (:func:`_cupd`, c_upd today vs a cut);
    ``first_run`` (:func:`_first_run`, the fresh-clone ``make demo``);
    ``policy_every_k[scenario]``, ``policy_n``, ``policy_seeds`` and ``policy_world`` (its c_upd0, c_upd_item, λ)
    (``benchmarks/results/policy_regret.json``);
    ``stream`` (:func:`~stmltm_nb.decision.stream_log.stream_summary` of ``data/controller_events.jsonl``);
    ``probe`` (:func:`~stmltm_nb.metrics.probe.probe_table` of ``benchmarks/results/probe_recall.jsonl``, the shipped
    design) and ``probes[variant]`` (every design measured there); ``ltm_misses``: the issue-#13 bars the measured
    comparison misses (:func:`~stmltm_nb.metrics.ltm_bars.comparison_misses`, "; "-joined, "none" when all are met);
    ``ltm_bars[name]``: those bars (:func:`~stmltm_nb.metrics.ltm_bars.thresholds`);
    ``levers`` (:func:`levers`: the recipe levers of ``benchmarks/results/lever_tune_*.json`` against their baseline).
    A name whose file is missing is ``None`` (an error when a template uses it)."""
    from stmltm_nb.decision.curves import load_curves
    from stmltm_nb.metrics.ltm_bars import thresholds
    from stmltm_nb.shipped import data_dir

    c = dict(curves) if curves is not None else load_curves()
    comparison: dict[str, dict[str, Any]] = {}
    for r in c.get("comparison", []):
        comparison.setdefault(r["mode"], {})[r["questions"]] = r
    retention = {r["mode"]: r for r in c.get("retention", {}).get("rows", [])}
    recipe_path = data_dir() / "ltm_recipe.jsonl"
    recipe = ({r["name"]: r for r in map(json.loads, recipe_path.read_text().splitlines()) if r}
              if recipe_path.is_file() else None)
    probes = all_probe_results(PROBE)
    return {
        "ltm_misses": _ltm_misses(comparison, retention),
        "ltm_bars": thresholds(),
        "curves": c,
        "fits": {f["model"]: f for f in c.get("recall", {}).get("fits", [])},
        "comparison": comparison,
        "retention": retention,
        "versus": versus(comparison),
        "versus_text": versus_text(comparison),
        "cell": cells(comparison),
        "retrieval": c.get("retrieval"),
        "pooled": {r["n"]: r for r in c.get("recall", {}).get("pooled", [])},
        "cost": {r["n"]: r for r in c.get("cost", {}).get("rows", [])},
        "n_max": half_recall_n(c) if "recall" in c else None,
        "runtimes": _Runtimes(load_runtimes().get("seconds") or {}),
        "recipe": recipe,
        "incremental": _read_json(INCREMENTAL),
        "roofline": _roofline(_read_json(ROOFLINE)),
        "cupd": _cupd(RESULTS),
        "first_run": _first_run(_read_json(FIRST_RUN)),
        "stream": _stream(data_dir() / "controller_events.jsonl"),
        "probe": None if probes is None else probes["steps"],
        "probes": probes,
        "levers": levers(),
        **_policy(_read_json(POLICY)),
    }


def cells(comparison: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, dict[str, str]]]:
    """``cell[mode][kind][part]``: a comparison value with its 95 % interval as text, e.g. "0.61 [0.45, 0.75]", for
    ``part`` "cart" (cartridge facts), "resid" (residual facts) or "all"; "not measured" where the run did not ask
    it (a mode left out with ``--skip``, training questions where no bar reads them). Every mode and kind of the
    comparison is present."""
    from stmltm_nb.metrics.comparison import KINDS, MODES, ci_text

    def fmt(r: Mapping[str, Any] | None, key: str, lo: str, hi: str) -> str:
        return ci_text(*((None, None, None) if r is None else (r.get(key), r.get(lo), r.get(hi))))

    out: dict[str, dict[str, dict[str, str]]] = {}
    for mode in MODES:
        for kind in KINDS:
            r = comparison.get(mode, {}).get(kind)
            out.setdefault(mode, {})[kind] = {
                "cart": fmt(r, "recall_cart", "recall_cart_lo", "recall_cart_hi"),
                "resid": fmt(r, "recall_resid", "recall_resid_lo", "recall_resid_hi"),
                "all": fmt(r, "recall", "lo", "hi"),
                "teacher": "not measured" if r is None or r.get("frac_of_teacher_cart") is None
                else f"{r['frac_of_teacher_cart']:.0%}",
                "ms": "not measured" if r is None or r.get("s_per_query") is None else f"{r['s_per_query'] * 1000:.0f} ms",
            }
    return out


def versus_text(comparison: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """:func:`versus` for every pair of :data:`~stmltm_nb.metrics.comparison.MODES`, "not measured" where either
    memory was not asked in the run."""
    from stmltm_nb.metrics.comparison import MODES

    v = versus(comparison)
    return {a: {b: v.get(a, {}).get(b, "not measured") for b in MODES} for a in MODES}


def versus(comparison: Mapping[str, Mapping[str, Any]], kind: str = "heldout") -> dict[str, dict[str, str]]:
    """``versus[a][b]``: "above", "below" or "not resolved", memory a against memory b on the cartridge facts'
    recall (``kind`` questions), by their 95 % intervals (above: a's low end over b's high end). Prose says a
    difference only where this resolves it."""
    rows = {m: r[kind] for m, r in comparison.items() if kind in r and r[kind].get("recall_cart") is not None}
    out: dict[str, dict[str, str]] = {}
    for a, ra in rows.items():
        for b, rb in rows.items():
            if ra["recall_cart_lo"] > rb["recall_cart_hi"]:
                v = "above"
            elif ra["recall_cart_hi"] < rb["recall_cart_lo"]:
                v = "below"
            else:
                v = "not resolved"
            out.setdefault(a, {})[b] = v
    return out


def _roofline(data: Any) -> dict[str, Any] | None:
    """``benchmarks/results/roofline.json`` with its table keyed by phase and the matmul peak (GFLOP/s); with a cut
    timed beside it (``--set``), ``cut_phase`` (its table by phase), ``cut_recipe`` (its overrides as text) and
    ``cut_speedup`` (default s/step over the cut's)."""
    if not data:
        return None
    from stmltm_nb.metrics.levers import recipe_text

    out = {**data, "phase": {r["phase"]: r for r in data["table"]}, "peak": max(p["gflops"] for p in data["peak"]),
           "steps": len(data["profile"]["steps"])}
    if data.get("cut"):
        cut = {r["phase"]: r for r in data["cut"]["table"]}
        out.update(cut_phase=cut, cut_recipe=recipe_text(data["cut"]),
                   cut_speedup=out["phase"]["step"]["seconds"] / cut["step"]["seconds"])
    return out


def _cupd(folder: Path) -> dict[str, Any] | None:
    """``cupd[name]`` for each summary ``benchmarks/results/cupd_<name>.json`` of ``benchmarks/cupd.py``: ``today``/
    ``cut`` (c_upd_s, teacher_s, train_s, steps, steps_per_s), ``speedup``, ``cut_recipe`` (text), ``part[key]`` (each
    recall row by :func:`~stmltm_nb.metrics.levers.part_key`), ``keeps_recall``, ``meets_bar``, ``bar_s``; None when
    there is none (its runs, ``cupd_<name>_today.json``/``_cut.json``, are not summaries)."""
    from stmltm_nb.metrics.levers import part_key, recipe_text

    out = {}
    for path in sorted(folder.glob("cupd_*.json")):
        data = _read_json(path)
        if isinstance(data, dict) and "speedup" in data:
            out[path.stem.removeprefix("cupd_")] = {
                **data, "part": {part_key(r): r for r in data["recall"]},
                "keeps_text": "yes" if data["keeps_recall"] else "no", "meets_text": "yes" if data["meets_bar"] else "no",
                "cut_recipe": recipe_text(data["cut"])}
    return out or None


def _first_run(data: Any) -> dict[str, Any] | None:
    """``benchmarks/results/first_run.json`` (:mod:`benchmarks.first_run`): seconds of set-up, demo and both,
    ``phase[name]`` (seconds), ``minutes`` of the demo and of set-up + demo, the warning counts, ``max_silence_s`` (the longest time the demo
    printed nothing, seconds)."""
    if not data:
        return None
    return {**data, "phase": {p["phase"]: p["seconds"] for p in data["phases"]},
            "max_silence_s": max(p["max_silence_s"] for p in data["phases"]),
            "demo_min": data["demo_s"] / 60, "total_min": data["total_s"] / 60,
            "n_setup_warnings": len(data["setup_warnings"]), "n_demo_warnings": len(data["demo_warnings"])}


def levers(folder: Path | None = None) -> dict[str, Any] | None:
    """``levers.base[part]`` (the baseline's value of each part, :data:`~stmltm_nb.metrics.levers.PART_KEYS`),
    ``levers.config`` (the baseline's recipe),
    ``levers.seconds`` (the baseline run's), ``levers.n_resid`` (its residual notes), ``levers.n`` (levers run), ``levers.run[name]``: ``recipe`` (its
    ``--set`` text), ``seconds``, ``decision`` (:func:`~stmltm_nb.metrics.levers.lever_decision` with the target of
    ``lever_plan.json``; None without one) and ``[part]`` (the row of :func:`~stmltm_nb.metrics.levers.lever_gaps`:
    base, lever, delta, lo, hi, verdict); None without a baseline."""
    from stmltm_nb.metrics.levers import (
        lever_decision,
        lever_gaps,
        part_key,
        read_lever_plan,
        read_lever_runs,
        recipe_text,
    )

    folder = folder or LEVERS
    base, runs = read_lever_runs(folder)
    if base is None:
        return None
    plan = read_lever_plan(folder)

    def summary(name: str, run: Mapping[str, Any]) -> dict[str, Any]:
        rows = lever_gaps(base, run)
        target = plan.get(name, {}).get("target")
        parent = runs.get(plan.get(name, {}).get("builds_on", ""))
        vs_parent = {part_key(r): r for r in lever_gaps(parent, run)} if parent is not None else None
        return {"recipe": recipe_text(run), "seconds": run.get("total_seconds"), "vs_parent": vs_parent,
                "config": run.get("consolidation", {}).get("config", {}),
                "decision": lever_decision(rows, target) if target else None, **{part_key(r): r for r in rows}}

    return {"n": len(runs), "base": {part_key(r): r["base"] for r in lever_gaps(base, base, 1)},
            "config": base.get("consolidation", {}).get("config", {}),
            "seconds": base.get("total_seconds"), "n_resid": base.get("n_resid"), "run": {name: summary(name, run) for name, run in runs.items()}}


def _ltm_misses(comparison: Mapping[str, Any], retention: Mapping[str, Any]) -> str | None:
    from stmltm_nb.metrics.ltm_bars import comparison_misses

    try:
        return "; ".join(comparison_misses(comparison, retention)) or "none"
    except KeyError:  # a comparison without the served modes (e.g. a fast or older run)
        return None


def _stream(path: Path) -> dict[str, Any] | None:
    from stmltm_nb.decision.stream_log import read_events, stream_summary

    return stream_summary(read_events(path)) if path.is_file() else None


def _policy(res: Mapping[str, Any] | None) -> dict[str, Any]:
    keys = ("policy", "policy_rules", "policy_verdict", "policy_shipped", "policy_every_k", "policy_n", "policy_seeds",
            "policy_world")
    if res is None:
        return dict.fromkeys(keys)
    table: dict[str, Any] = {}
    for r in res["rows"]:
        table.setdefault(r["set"], {}).setdefault(r["scenario"], {})[r["rule"]] = r
    return dict(zip(keys, (table, res["rules"], res["verdict"], res["shipped"], res["every_k"], res["n_streams"],
                           res["random_seeds"], res["world"])))


# ---- the expression evaluator -------------------------------------------------------------------------------

def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _lookup(base: Any, key: Any, where: str, ph: str) -> Any:
    if isinstance(base, Mapping):
        if key in base:
            return base[key]
        raise TemplateError(f"{ph}: no key {key!r} in {where} (keys: {', '.join(map(str, list(base)[:12]))})")
    if isinstance(base, (list, tuple)) and isinstance(key, int) and not isinstance(key, bool):
        if -len(base) <= key < len(base):
            return base[key]
        raise TemplateError(f"{ph}: index {key} out of range for {where} (length {len(base)})")
    raise TemplateError(f"{ph}: cannot look up {key!r} in {where} (a {type(base).__name__})")


def _eval(node: ast.AST, ns: Mapping[str, Any], ph: str) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body, ns, ph)
    if isinstance(node, ast.Constant) and _number(node.value):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in ns:
            raise TemplateError(f"{ph}: unknown name {node.id!r} (names: {', '.join(sorted(ns))})")
        if ns[node.id] is None:
            raise TemplateError(f"{ph}: the data source {node.id!r} is missing (its file was not found)")
        return ns[node.id]
    if isinstance(node, ast.Attribute):
        return _lookup(_eval(node.value, ns, ph), node.attr, ast.unparse(node.value), ph)
    if isinstance(node, ast.Subscript):
        s = node.slice
        key = s.value if isinstance(s, ast.Constant) and isinstance(s.value, str) else _eval(s, ns, ph)
        return _lookup(_eval(node.value, ns, ph), key, ast.unparse(node.value), ph)
    if isinstance(node, ast.BinOp) and type(node.op) in OPS:
        a, b = _eval(node.left, ns, ph), _eval(node.right, ns, ph)
        if not (_number(a) and _number(b)):
            raise TemplateError(f"{ph}: arithmetic needs numbers, got {type(a).__name__} and {type(b).__name__}")
        try:
            return OPS[type(node.op)](a, b)
        except ZeroDivisionError:
            raise TemplateError(f"{ph}: division by zero") from None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand, ns, ph)
        if not _number(v):
            raise TemplateError(f"{ph}: a sign needs a number, got {type(v).__name__}")
        return -v if isinstance(node.op, ast.USub) else v
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CALLS
            and not node.keywords):
        args = [_eval(a, ns, ph) for a in node.args]
        try:
            return CALLS[node.func.id](*args)
        except (TypeError, ValueError) as e:
            raise TemplateError(f"{ph}: {node.func.id}(): {e}") from None
    raise TemplateError(f"{ph}: {type(node).__name__} is not allowed in a placeholder (allowed: {ALLOWED})")


def _split_format(inner: str) -> tuple[str, str | None]:
    """``expr :fmt`` → (expr, fmt): the last ``:`` outside brackets and quotes starts the format."""
    depth, quote, cut = 0, None, None
    for i, ch in enumerate(inner):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == ":" and depth == 0:
            cut = i
    return (inner, None) if cut is None else (inner[:cut], inner[cut + 1:].strip())


def evaluate(expr: str, ns: Mapping[str, Any], placeholder: str | None = None) -> Any:
    """The value of one restricted expression over ``ns``."""
    ph = placeholder or "{{ " + expr.strip() + " }}"
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as e:
        raise TemplateError(f"{ph}: not an expression ({e.msg})") from None
    return _eval(tree, ns, ph)


def render_placeholder(inner: str, ns: Mapping[str, Any]) -> str:
    """One placeholder's text (``inner`` is what stands between the braces)."""
    ph = "{{" + inner + "}}"
    expr, spec = _split_format(inner)
    value = evaluate(expr, ns, ph)
    if spec and spec.startswith(OPTIONAL):
        spec = spec[len(OPTIONAL):]
        if value is None:  # a measurement not made (yet)
            return "not measured"
    if value is None and spec:  # a JSON null where a number was measured: NaN or ±inf before json_clean
        return "not finite"
    if spec in NAMED_FORMATS:
        if not _number(value):
            raise TemplateError(f"{ph}: format {spec!r} needs a number, got {type(value).__name__}")
        return NAMED_FORMATS[spec](value)
    try:
        return format(value, spec or "")
    except (TypeError, ValueError) as e:
        raise TemplateError(f"{ph}: format {spec!r}: {e}") from None


def has_placeholders(text: str) -> bool:
    return PLACEHOLDER.search(text) is not None


def render(text: str, ns: Mapping[str, Any] | None = None) -> str:
    """``text`` with every placeholder replaced by its rendered value."""
    if not has_placeholders(text):
        return text
    ns = namespace() if ns is None else ns
    return PLACEHOLDER.sub(lambda m: render_placeholder(m.group(1), ns), text)
