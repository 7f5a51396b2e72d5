"""The measured curves as one typed record: ``data/measured_curves.json`` (schema 2, written by ``stmltm measure``)
read once by :func:`read_curves` into frozen dataclasses, every field the decision side uses validated (type,
finiteness, recall in [0, 1]); a bad field raises :class:`CurvesError` naming it. Torch-free.

A file whose ``schema_version`` is missing or older than :data:`SCHEMA_VERSION` is refused with the version found
and the command that rebuilds it (:data:`REBUILD`). A partial file (a measurement in progress) reads: a missing
section is ``None`` (an empty tuple for ``comparison``); a section that is there must be valid.

Sections read (units as written by the measure job): ``cost`` (s/query fits in items), ``recall`` (q_ctx(n) fits),
``comparison`` (recall by memory mode and question set, relation-clustered bootstrap intervals), ``retention``
(general-text NLL, nats/token, paired against no memory), ``retrieval`` (BM25 top-k cost curve, s/query),
``consolidation`` (c_upd, s), ``cartridge`` (r_cart, s/query), ``signal`` (SNR_m), ``q_cart_probe``.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
REBUILD = "stmltm measure --split report --seeds 0 1 --out data/measured_curves.json"  # how the shipped file was made
MODES = ("no memory", "STM (all items)", "STM + retrieval", "STM (own chunk, oracle)", "teacher (fact alone)",
         "LTM (cartridge)", "LTM + residual STM", "STM (residual items only)")
QUESTIONS = ("train", "heldout")
SPLITS = ("tune", "report", "final")
RETENTION_MODES = ("no memory", "LTM (step 0)", "LTM (cartridge)", "LTM + residual STM")
SERVED = "LTM + residual STM"  # the memory the controller serves after a consolidation
RETRIEVAL = "STM + retrieval"
STM_ALL = "STM (all items)"


class CurvesError(ValueError):
    """A measured-curves file of an older schema, or a field that is missing, of the wrong type, NaN/inf or out of
    range; the message names the field."""


# ----- field readers: each names the field (a dotted path) in its error --------------------------------------------
def _fail(source: str, msg: str) -> CurvesError:
    return CurvesError(f"{source}: {msg}")


def _get(node: Mapping[str, Any], key: str, path: str, source: str, required: bool = True) -> Any:
    if key not in node:
        if required:
            raise _fail(source, f"missing field '{path}' (is it a measured-curves file from `stmltm measure`?)")
        return None
    return node[key]


def _num(v: Any, path: str, source: str, lo: float | None = None, hi: float | None = None,
         nullable: bool = False) -> float | None:
    if v is None and nullable:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise _fail(source, f"field '{path}' must be a number, got {type(v).__name__} {v!r}")
    x = float(v)
    if not math.isfinite(x):
        raise _fail(source, f"field '{path}' is {v} (not measured?), not a finite number; re-run `{REBUILD}`")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise _fail(source, f"field '{path}' must be in {rng}, got {v}")
    return x


def _int(v: Any, path: str, source: str, lo: int = 0, nullable: bool = False) -> int | None:
    if v is None and nullable:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
        raise _fail(source, f"field '{path}' must be an integer >= {lo}, got {v!r}")
    return int(v)


def _str(v: Any, path: str, source: str, choices: tuple[str, ...] | None = None, nullable: bool = False) -> str | None:
    if v is None and nullable:
        return None
    if not isinstance(v, str) or (choices is not None and v not in choices):
        want = f"one of {list(choices)}" if choices else "a string"
        raise _fail(source, f"field '{path}' must be {want}, got {v!r}")
    return v


def _obj(v: Any, path: str, source: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise _fail(source, f"field '{path}' must be an object, got {type(v).__name__}")
    return v


def _list(v: Any, path: str, source: str) -> list[Any]:
    if not isinstance(v, list):
        raise _fail(source, f"field '{path}' must be a list, got {type(v).__name__}")
    return v


def _prob(node: Mapping[str, Any], key: str, path: str, source: str, nullable: bool = False,
          required: bool = True) -> float | None:
    return _num(_get(node, key, f"{path}.{key}", source, required), f"{path}.{key}", source, 0.0, 1.0,
                nullable or not required)


def _seeds(v: Any, path: str, source: str, lo: float | None = 0.0, hi: float | None = 1.0) -> tuple[float, ...] | None:
    if v is None:
        return None
    return tuple(_num(s, f"{path}[{i}]", source, lo, hi) for i, s in enumerate(_list(v, path, source)))


# ----- the record ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """A recall (share of questions answered) with its 95 % bootstrap interval (relations, then facts)."""

    value: float
    lo: float
    hi: float


@dataclass(frozen=True)
class ComparisonRow:
    """One (memory mode, question set) row of the comparison. Recall in [0, 1]; s_per_query in s;
    answer_nll in nats/token. ``*_cart``/``*_resid``: over the consolidated / residual facts only (None: not asked)."""

    mode: str
    questions: str
    recall: float
    lo: float
    hi: float
    n_questions: int
    recall_cart: float | None = None
    recall_cart_lo: float | None = None
    recall_cart_hi: float | None = None
    recall_resid: float | None = None
    recall_resid_lo: float | None = None
    recall_resid_hi: float | None = None
    split: str | None = None
    frac_of_teacher: float | None = None
    seeds: tuple[float, ...] | None = None
    n_facts: int | None = None
    n_relations: int | None = None
    s_per_query: float | None = None
    answer_nll: float | None = None

    @property
    def overall(self) -> Interval:
        return Interval(self.recall, self.lo, self.hi)

    @property
    def cart(self) -> Interval | None:
        """Recall on the consolidated facts with its interval (None: not asked or no interval)."""
        if self.recall_cart is None or self.recall_cart_lo is None or self.recall_cart_hi is None:
            return None
        return Interval(self.recall_cart, self.recall_cart_lo, self.recall_cart_hi)


@dataclass(frozen=True)
class RetentionRow:
    """General-text NLL (nats/token) of one memory mode; delta_nll vs no memory, paired over passages, 95 % interval."""

    mode: str
    nll: float
    delta_nll: float
    lo: float
    hi: float
    seeds: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Retention:
    passages: int
    tokens: int
    rows: tuple[RetentionRow, ...]

    def row(self, mode: str) -> RetentionRow | None:
        return next((r for r in self.rows if r.mode == mode), None)


@dataclass(frozen=True)
class RetrievalCostRow:
    n: int  # items in the store
    ttft_s: float
    search_s: float
    excess_s: float  # s/query over no memory: prefill of the top-k items + the search


@dataclass(frozen=True)
class Retrieval:
    """BM25 top-k retrieval into the context: per-query excess cost c_ret(n) = a + b·n (s/query, n items)."""

    k: int
    library: str
    rows: tuple[RetrievalCostRow, ...]
    a: float
    b: float


@dataclass(frozen=True)
class LinearFit:
    a: float  # s/query
    b: float  # s/query per item


@dataclass(frozen=True)
class CostCurves:
    """STM per-query cost fits (s/query against items n) in the cached and the stateless serving regime."""

    cached: LinearFit | None
    stateless: LinearFit | None


@dataclass(frozen=True)
class RecallFits:
    """q_ctx(n) fits by family: params by name; ``best`` names the family the rule uses (best AIC)."""

    best: str
    params: Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class Consolidation:
    c_upd_s: float | None  # s per consolidation as measured (teacher + training)
    train_s: float | None
    teacher_s: float | None
    questions_s: float | None


@dataclass(frozen=True)
class MeasuredCurves:
    """The validated measured curves. A section is None when the file lacks it (a measurement in progress)."""

    schema_version: int
    source: str
    model: str | None = None
    n_facts: int | None = None
    seeds: tuple[int, ...] | None = None
    cost: CostCurves | None = None
    recall: RecallFits | None = None
    comparison: tuple[ComparisonRow, ...] = ()
    retention: Retention | None = None
    retrieval: Retrieval | None = None
    consolidation: Consolidation | None = None
    r_cart_s: float | None = None  # cartridge overhead, s/query
    snr_m: float | None = None  # G2: SNR_m at initialisation
    snr_m_lo: float | None = None
    q_cart_points: tuple[tuple[float, float], ...] | None = None

    def row(self, mode: str, questions: str = "heldout") -> ComparisonRow | None:
        return next((r for r in self.comparison if r.mode == mode and r.questions == questions), None)

    @property
    def served(self) -> ComparisonRow | None:
        """The served memory (cartridge + residual STM) on held-out wordings: the rule's q_cart source."""
        return self.row(SERVED, "heldout")


def version_of(curves: Mapping[str, Any], source: str = "measured curves") -> int:
    """``schema_version`` of a curves object; a missing or older one raises :class:`CurvesError` naming it and
    the rebuild command."""
    v = curves.get("schema_version")
    if isinstance(v, bool) or not isinstance(v, int) or v < SCHEMA_VERSION:
        found = "missing (schema 1 or not a measured-curves file)" if v is None else repr(v)
        raise _fail(source, f"schema_version {found}; this package reads schema {SCHEMA_VERSION}: "
                            f"rebuild it with `{REBUILD}`")
    if v > SCHEMA_VERSION:
        raise _fail(source, f"schema_version {v} is newer than this package reads ({SCHEMA_VERSION}); update stmltm_nb")
    return v


def _row(r: Any, i: int, source: str) -> ComparisonRow:
    path = f"comparison[{i}]"
    r = _obj(r, path, source)
    mode = _str(_get(r, "mode", f"{path}.mode", source), f"{path}.mode", source, MODES)
    questions = _str(_get(r, "questions", f"{path}.questions", source), f"{path}.questions", source, QUESTIONS)
    path = f"comparison[{mode}, {questions}]"
    p = {k: _prob(r, k, path, source) for k in ("recall", "lo", "hi")}
    for part in ("cart", "resid"):
        for k in (f"recall_{part}", f"recall_{part}_lo", f"recall_{part}_hi"):
            p[k] = _prob(r, k, path, source, nullable=True, required=part == "cart")
    for a, b in (("lo", "hi"), ("recall_cart_lo", "recall_cart_hi"), ("recall_resid_lo", "recall_resid_hi")):
        if p[a] is not None and p[b] is not None and p[a] > p[b]:
            raise _fail(source, f"field '{path}.{a}' = {p[a]} exceeds '{path}.{b}' = {p[b]}")
    opt = {k: r.get(k) for k in ("split", "frac_of_teacher", "seeds", "n_facts", "n_relations", "s_per_query",
                                 "answer_nll")}
    return ComparisonRow(
        mode=mode, questions=questions, **p,
        n_questions=_int(_get(r, "n_questions", f"{path}.n_questions", source), f"{path}.n_questions", source),
        split=_str(opt["split"], f"{path}.split", source, SPLITS, nullable=True),
        frac_of_teacher=_num(opt["frac_of_teacher"], f"{path}.frac_of_teacher", source, 0.0, nullable=True),
        seeds=_seeds(opt["seeds"], f"{path}.seeds", source),
        n_facts=_int(opt["n_facts"], f"{path}.n_facts", source, nullable=True),
        n_relations=_int(opt["n_relations"], f"{path}.n_relations", source, nullable=True),
        s_per_query=_num(opt["s_per_query"], f"{path}.s_per_query", source, 0.0, nullable=True),
        answer_nll=_num(opt["answer_nll"], f"{path}.answer_nll", source, 0.0, nullable=True))


def _retention(v: Any, source: str) -> Retention:
    sec = _obj(v, "retention", source)
    rows = []
    for i, r in enumerate(_list(_get(sec, "rows", "retention.rows", source), "retention.rows", source)):
        r = _obj(r, f"retention.rows[{i}]", source)
        mode = _str(_get(r, "mode", f"retention.rows[{i}].mode", source), f"retention.rows[{i}].mode", source,
                    RETENTION_MODES)
        path = f"retention.rows[{mode}]"
        f = {k: _num(_get(r, k, f"{path}.{k}", source), f"{path}.{k}", source, 0.0 if k == "nll" else None)
             for k in ("nll", "delta_nll", "lo", "hi")}
        if f["lo"] > f["hi"]:
            raise _fail(source, f"field '{path}.lo' = {f['lo']} exceeds '{path}.hi' = {f['hi']}")
        rows.append(RetentionRow(mode, **f, seeds=_seeds(r.get("seeds"), f"{path}.seeds", source, None, None)))
    return Retention(_int(_get(sec, "passages", "retention.passages", source), "retention.passages", source, 1),
                     _int(_get(sec, "tokens", "retention.tokens", source), "retention.tokens", source, 1), tuple(rows))


def _retrieval(v: Any, source: str) -> Retrieval:
    sec = _obj(v, "retrieval", source)
    cost = _obj(_get(sec, "cost", "retrieval.cost", source), "retrieval.cost", source)
    rows = []
    for i, r in enumerate(_list(_get(cost, "rows", "retrieval.cost.rows", source), "retrieval.cost.rows", source)):
        r = _obj(r, f"retrieval.cost.rows[{i}]", source)
        path = f"retrieval.cost.rows[{i}]"
        rows.append(RetrievalCostRow(_int(_get(r, "n", f"{path}.n", source), f"{path}.n", source),
                                     *(_num(_get(r, k, f"{path}.{k}", source), f"{path}.{k}", source,
                                            None if k == "excess_s" else 0.0)
                                       for k in ("ttft_s", "search_s", "excess_s"))))
    fit = _obj(_get(cost, "fit_linear", "retrieval.cost.fit_linear", source), "retrieval.cost.fit_linear", source)
    coef = _obj(_get(fit, "coef", "retrieval.cost.fit_linear.coef", source), "retrieval.cost.fit_linear.coef", source)
    a, b = (_num(_get(coef, k, f"retrieval.cost.fit_linear.coef.{k}", source),
                 f"retrieval.cost.fit_linear.coef.{k}", source) for k in ("a", "b"))
    return Retrieval(_int(_get(sec, "k", "retrieval.k", source), "retrieval.k", source, 1),
                     _str(_get(sec, "library", "retrieval.library", source), "retrieval.library", source),
                     tuple(rows), a, b)


def _fit(cost: Mapping[str, Any], regime: str, source: str) -> LinearFit | None:
    key = f"fit_{regime}_linear"
    if key not in cost:
        return None
    path = f"cost.{key}"
    coef = _obj(_get(_obj(cost[key], path, source), "coef", f"{path}.coef", source), f"{path}.coef", source)
    a = _num(coef.get("a", 0.0), f"{path}.coef.a", source)
    return LinearFit(a, _num(_get(coef, "b", f"{path}.coef.b", source), f"{path}.coef.b", source))


def _recall(v: Any, source: str) -> RecallFits:
    sec = _obj(v, "recall", source)
    best = _get(sec, "best_fit", "recall.best_fit", source)
    fits = _list(_get(sec, "fits", "recall.fits", source), "recall.fits", source)
    by_model = {f.get("model"): f for f in fits if isinstance(f, Mapping)}
    if best not in by_model:
        raise _fail(source, f"field 'recall.best_fit' = {best!r} names no entry of 'recall.fits'")
    params: dict[str, dict[str, float]] = {}
    for name, f in by_model.items():
        ps = _obj(f.get("params"), f"recall.fits[{name}].params", source)
        params[str(name)] = {k: _num(x, f"recall.fits[{name}].params.{k}", source) for k, x in ps.items()}
    return RecallFits(str(best), params)


def _consolidation(v: Any, source: str) -> Consolidation:
    sec = _obj(v, "consolidation", source)
    secs = _obj(sec.get("seconds", {}), "consolidation.seconds", source)
    total = sec.get("c_upd_s", secs.get("total"))
    path = "consolidation.c_upd_s" if "c_upd_s" in sec else "consolidation.seconds.total"
    return Consolidation(_num(total, path, source, 0.0, nullable="c_upd_s" not in sec),
                         *(_num(secs.get(k), f"consolidation.seconds.{k}", source, 0.0, nullable=True)
                           for k in ("train", "teacher", "questions")))


def read_curves(curves: Mapping[str, Any] | str | Path | MeasuredCurves | None = None,
                source: str | None = None) -> MeasuredCurves:
    """The one reader: a curves object (or a path, or None for ``data/measured_curves.json``) as a validated
    :class:`MeasuredCurves`. Raises :class:`CurvesError` naming the bad field or the old schema version
    (:class:`FileNotFoundError` for a missing file)."""
    if isinstance(curves, MeasuredCurves):
        return curves
    if curves is None or isinstance(curves, (str, Path)):
        from stmltm_nb.decision.curves import curves_path

        p = Path(curves) if curves is not None else curves_path()
        source = source or str(p)
        try:
            curves = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{p} not found: run `{REBUILD}` to create it") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CurvesError(f"{p} is not valid JSON ({e}); re-run `{REBUILD}`") from e
    source = source or "measured curves"
    if not isinstance(curves, Mapping):
        raise _fail(source, f"measured curves must be a JSON object, got {type(curves).__name__}")
    version = version_of(curves, source)
    rows = tuple(_row(r, i, source) for i, r in enumerate(_list(curves.get("comparison") or [], "comparison", source)))
    keys = [(r.mode, r.questions) for r in rows]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise _fail(source, f"field 'comparison' has more than one row for {dup}")
    cost = curves.get("cost")
    if cost is not None:
        cost = _obj(cost, "cost", source)
        cost = CostCurves(_fit(cost, "cached", source), _fit(cost, "stateless", source))
    signal = _obj(curves.get("signal") or {}, "signal", source)
    init = _obj(signal.get("per_item_at_init") or {}, "signal.per_item_at_init", source)
    cart = curves.get("cartridge")
    probe = _obj(curves.get("q_cart_probe") or {}, "q_cart_probe", source).get("points")
    seeds = curves.get("seeds")
    return MeasuredCurves(
        schema_version=version, source=source,
        model=_str(curves.get("model"), "model", source, nullable=True),
        n_facts=_int(curves.get("n_facts"), "n_facts", source, nullable=True),
        seeds=None if seeds is None else tuple(_int(s, f"seeds[{i}]", source)
                                               for i, s in enumerate(_list(seeds, "seeds", source))),
        cost=cost,
        recall=None if "recall" not in curves else _recall(curves["recall"], source),
        comparison=rows,
        retention=None if curves.get("retention") is None else _retention(curves["retention"], source),
        retrieval=None if curves.get("retrieval") is None else _retrieval(curves["retrieval"], source),
        consolidation=None if curves.get("consolidation") is None else _consolidation(curves["consolidation"], source),
        r_cart_s=None if cart is None else _num(_get(_obj(cart, "cartridge", source), "r_cart_s", "cartridge.r_cart_s",
                                                     source), "cartridge.r_cart_s", source, 0.0),
        snr_m=_num(init.get("snr_m"), "signal.per_item_at_init.snr_m", source, 0.0, nullable=True),
        snr_m_lo=_num(init.get("snr_m_lo"), "signal.per_item_at_init.snr_m_lo", source, nullable=True),
        q_cart_points=None if not probe else tuple(
            (_num(pt[0], "q_cart_probe.points.n", source, 0.0), _num(pt[1], "q_cart_probe.points.q", source, 0.0, 1.0))
            for pt in _list(probe, "q_cart_probe.points", source)))


__all__ = ["MODES", "REBUILD", "RETENTION_MODES", "SCHEMA_VERSION", "SERVED", "ComparisonRow", "Consolidation",
           "CostCurves", "CurvesError", "Interval", "LinearFit", "MeasuredCurves", "RecallFits", "Retention",
           "RetentionRow", "Retrieval", "RetrievalCostRow", "read_curves", "version_of"]
