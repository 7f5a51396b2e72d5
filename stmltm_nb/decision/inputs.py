"""One schema for the switching inputs, however they arrive: ``stmltm decide`` flags, a JSON file, or the measured
curves. One set of defaults (:data:`FIELDS`, taken from :data:`~stmltm_nb.decision.defaults.DEFAULTS`), and every
bad value fails with the field's name before anything is evaluated. Torch-free.

JSON form: the :class:`~stmltm_nb.decision.switching.SwitchInputs` fields, ``cost`` and ``recall`` as objects::

    {"n": 64, "Q": 5000, "c_upd": 600, "r_cart": 0.01, "cost": {"kappa1": 0.002},
     "recall": {"kind": "hyperbolic", "n50": 10}}

Missing fields take the same defaults as the flags; unknown fields are refused.
"""

from __future__ import annotations

import argparse
import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stmltm_nb.decision.curves_record import CurvesError, read_curves
from stmltm_nb.decision.defaults import DEFAULTS
from stmltm_nb.decision.switching import (
    CostModel,
    RecallModel,
    RetrievalArm,
    SwitchingInputError,
    SwitchInputs,
    validate,
)
from stmltm_nb.decision.symbolic import RECALL_KINDS


@dataclass(frozen=True)
class Field:
    """One input: its path in the JSON form (``cost.kappa1``), default, unit/help and kind."""

    path: str
    default: Any
    help: str
    kind: str = "number"  # "number", "optional" (number or None), "choice" (recall family), "bool" (or None)

    @property
    def flag(self) -> str:
        """The command-line flag: the last path component (``--kappa1``); ``recall.kind`` is ``--recall``."""
        if self.path.startswith("retrieval."):
            name = self.path.replace(".", "_")
        else:
            name = "recall" if self.path == "recall.kind" else self.path.split(".")[-1]
        return "--" + name.replace("_", "-")


_D = DEFAULTS  # every default below is the one in decision.defaults
FIELDS: tuple[Field, ...] = (
    Field("n", _D.n, "STM items"), Field("Q", _D.Q, "future queries before the next consolidation"),
    Field("c_upd", _D.c_upd, "update cost, s"), Field("r_cart", _D.r_cart, "cartridge overhead, s/query"),
    Field("cost.kappa0", _D.kappa0, "c_ctx intercept, s"), Field("cost.kappa1", _D.kappa1, "c_ctx slope, s/item"),
    Field("cost.kappa2", _D.kappa2, "c_ctx curvature, s/item²"),
    Field("recall.kind", _D.recall_kind, "recall family", "choice"), Field("recall.q0", _D.q0, "recall at n→0"),
    Field("recall.rho", _D.rho, "linear recall slope, 1/item"), Field("recall.nu", _D.nu, "exponential scale, items"),
    Field("recall.n50", _D.n50, "hyperbolic/Hill half-recall size, items"), Field("recall.k", _D.k, "Hill exponent"),
    Field("q_cart", _D.q_cart, "cartridge recall on held-out questions (the controller's prior)"),
    Field("lam", _D.lam, "price of a wrong answer, s per unit loss (the same λ as the controller, `stmltm stream`, "
                         "the tuner and the demo)"),
    Field("Delta", _D.Delta, "L_miss − L_hit, loss"), Field("eps_d", _D.eps_d, "distillation gap, loss"),
    Field("eta", _D.eta, "hysteresis on c_upd"), Field("gamma", _D.gamma, "required quality margin, loss"),
    Field("tau", _D.tau, "SNR threshold"), Field("m", None, "evidence units (G1)", "optional"),
    Field("m_star", None, "m*, evidence units (G1)", "optional"), Field("delta", _D.delta, "G1 risk δ, in (0, 1)"),
    Field("snr", None, "measured SNR_m (G2)", "optional"),
    Field("snr_lo", None, "bootstrap lower bound of SNR_m (G2 tests it when given)", "optional"),
    Field("g_mdl", None, "G_MDL (G3)", "optional"), Field("holdout_pass", None, "hold-out check passed (G5)", "bool"),
    Field("q_ctx_lo", None, "STM recall at n: interval lower bound", "optional"),
    Field("q_ctx_hi", None, "STM recall at n: interval upper bound", "optional"),
    Field("q_cart_lo", None, "served cartridge recall: interval lower bound", "optional"),
    Field("q_cart_hi", None, "served cartridge recall: interval upper bound", "optional"),
    Field("q_tol", _D.q_tol, "equal-quality slack, recall (0: intervals must overlap)"),
    Field("retrieval.q", None, "STM + retrieval held-out recall (given: retrieval is an arm)", "optional"),
    Field("retrieval.lo", None, "STM + retrieval recall: interval lower bound", "optional"),
    Field("retrieval.hi", None, "STM + retrieval recall: interval upper bound", "optional"),
    Field("retrieval.kappa0", _D.retrieval_kappa0, "c_ret intercept, s/query"),
    Field("retrieval.kappa1", _D.retrieval_kappa1, "c_ret slope, s/query per item"),
    Field("dnll", None, "served memory's ΔNLL vs no memory, nats/token (G6)", "optional"),
    Field("dnll_lo", None, "its interval lower bound (G6 tests it when given)", "optional"),
    Field("dnll_hi", None, "its interval upper bound", "optional"),
    Field("dnll_tol", _D.dnll_tol, "G6 retention tolerance, nats/token"),
)
BY_PATH = {f.path: f for f in FIELDS}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field. Flags default to None ("not given"), so the schema's defaults apply in one place."""
    for f in FIELDS:
        kw: dict[str, Any] = {"dest": f.path.replace(".", "__"), "default": None,
                              "help": f"{f.help} (default {f.default})"}
        if f.kind == "choice":
            kw["choices"] = list(RECALL_KINDS)
        elif f.kind == "bool":
            kw.update(choices=["true", "false"], type=str.lower)
        else:
            kw["type"] = float
        parser.add_argument(f.flag, **kw)


def given_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The fields set on the command line, by path (``holdout_pass`` as a bool)."""
    out = {}
    for f in FIELDS:
        v = getattr(args, f.path.replace(".", "__"), None)
        if v is not None:
            out[f.path] = (v == "true") if f.kind == "bool" else v
    return out


def flatten(obj: Any, source: str = "JSON") -> dict[str, Any]:
    """The JSON form as {path: value}; a non-object, a non-object ``cost``/``recall`` or an unknown field raise."""
    if not isinstance(obj, Mapping):
        raise SwitchingInputError(f"{source}: the switching inputs must be a JSON object, got {type(obj).__name__}")
    out: dict[str, Any] = {}
    for key, v in obj.items():
        if key in ("cost", "recall", "retrieval"):
            if not isinstance(v, Mapping):
                raise SwitchingInputError(f"{source}: field '{key}' must be an object, got {type(v).__name__}")
            out.update({f"{key}.{k}": val for k, val in v.items()})
        else:
            out[str(key)] = v
    unknown = sorted(set(out) - set(BY_PATH))
    if unknown:
        raise SwitchingInputError(f"{source}: unknown field(s) {unknown}; known: {', '.join(BY_PATH)}")
    return out


def _typed(f: Field, v: Any, source: str) -> Any:
    if f.kind == "choice":
        if v not in RECALL_KINDS:
            raise SwitchingInputError(f"{source}: field '{f.path}' must be one of {RECALL_KINDS}, got {v!r}")
        return v
    if v is None and f.kind in ("optional", "bool"):
        return None
    if f.kind == "bool":
        if not isinstance(v, bool):
            raise SwitchingInputError(f"{source}: field '{f.path}' must be true, false or null, got {v!r}")
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise SwitchingInputError(f"{source}: field '{f.path}' must be a number, got {type(v).__name__} {v!r}")
    return float(v)


def build_inputs(values: Mapping[str, Any], source: str = "input") -> SwitchInputs:
    """:class:`SwitchInputs` from {path: value} (missing paths take :data:`FIELDS` defaults), validated."""
    unknown = sorted(set(values) - set(BY_PATH))
    if unknown:
        raise SwitchingInputError(f"{source}: unknown field(s) {unknown}")
    v = {f.path: _typed(f, values.get(f.path, f.default), source) for f in FIELDS}
    top = {p: val for p, val in v.items() if "." not in p}
    retr = None
    if v["retrieval.q"] is not None:
        retr = RetrievalArm(CostModel(v["retrieval.kappa0"], v["retrieval.kappa1"]), v["retrieval.q"],
                            v["retrieval.lo"], v["retrieval.hi"])
    elif v["retrieval.lo"] is not None or v["retrieval.hi"] is not None:
        raise SwitchingInputError(f"{source}: 'retrieval.lo'/'retrieval.hi' given without 'retrieval.q'")
    x = SwitchInputs(cost=CostModel(v["cost.kappa0"], v["cost.kappa1"], v["cost.kappa2"]),
                     recall=RecallModel(v["recall.kind"], q0=v["recall.q0"], rho=v["recall.rho"], nu=v["recall.nu"],
                                        n50=v["recall.n50"], k=v["recall.k"]), retrieval=retr, **top)
    validate(x)
    return x


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; unreadable or invalid JSON raises :class:`SwitchingInputError` naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise SwitchingInputError(f"cannot read {path}: {e}") from e
    except json.JSONDecodeError as e:
        raise SwitchingInputError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e


def inputs_from(json_obj: Any = None, flags: Mapping[str, Any] | None = None, source: str = "JSON") -> SwitchInputs:
    """The decide inputs: a JSON object (optional), then flags given explicitly override it, then defaults."""
    values = flatten(json_obj, source) if json_obj is not None else {}
    values.update(flags or {})
    return build_inputs(values, source)


# ----- measured curves -----------------------------------------------------------------------------------------
# the sections the switching side needs from a complete file (the record reader tolerates partial files)
CURVE_REQUIRED = ("consolidation.c_upd_s", "cartridge.r_cart_s", "signal.per_item_at_init.snr_m",
                  "cost.fit_cached_linear.coef.b", "cost.fit_stateless_linear.coef.b", "recall.best_fit")


def check_curves(curves: Any, source: str = "measured curves") -> dict[str, Any]:
    """Return ``curves`` unchanged if it is a schema-2 measured-curves file (:func:`read_curves` validates every
    field it reads) with every section the switching side needs; else :class:`CurvesError` naming the field or the
    old schema version. NaN is reported, never clamped."""
    rec = read_curves(curves, source=source)
    for path in CURVE_REQUIRED:
        node = curves
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise CurvesError(f"{source}: missing field '{path}' (is it a measured-curves file from "
                                  "`stmltm measure`?)")
            node = node[part]
    if rec.served is None:
        raise CurvesError(f"{source}: field 'comparison' has no row (LTM + residual STM, heldout): the served "
                          "memory's recall the rule prices")
    return dict(curves)
