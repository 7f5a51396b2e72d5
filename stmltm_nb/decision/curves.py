"""The measured curves (``data/measured_curves.json``, written by ``stmltm measure``) and the models fitted to
them, read without torch so the tuner, the policy simulator and the controller share one reader.
:func:`priors` is the only place that turns those sections into the rule's priors."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stmltm_nb.decision.switching import CostModel, RecallModel


def curves_path() -> Path:
    from stmltm_nb.shipped import data_dir

    return data_dir() / "measured_curves.json"


def load_curves(path: str | Path | None = None) -> dict[str, Any]:
    """The measured-curves JSON written by ``stmltm measure``."""
    p = Path(path) if path is not None else curves_path()
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{p} not found: run `stmltm measure` to create it") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{p} is not valid JSON ({e}); re-run `stmltm measure`") from e


def recall_model_from(curves: dict[str, Any], family: str | None = None) -> RecallModel:
    """The fitted q_ctx(n) family from the measured curves (best AIC unless ``family`` is given)."""
    fits = {f["model"]: f for f in curves["recall"]["fits"]}
    fam = family or curves["recall"]["best_fit"]
    p = fits[fam]["params"]
    return RecallModel(fam, q0=p.get("q0", 1.0), rho=p.get("rho", 0.0), nu=p.get("nu", 1.0),
                       n50=p.get("n50", 1.0), k=p.get("k", 1.0))


def ltm_recall(curves: dict[str, Any], default: float = 0.7, questions: str = "heldout") -> float:
    """q_cart: the cartridge's recall on held-out paraphrases of the facts it was trained on (``questions="train"``:
    on its trained templates, an optimistic figure the rule does not use; older files, without the split, give
    the recall over every fact asked)."""
    for r in curves.get("comparison", []):
        if r["mode"] == "LTM (cartridge)" and r["questions"] == questions:
            v = r.get("recall_cart", r["recall"])
            return float(r["recall"] if v is None else v)
    return default


@dataclass
class Priors:
    """The switching rule's priors from one measured-curves file; a field is None when its section is missing
    (a partial file, a measurement still running). Seconds, per query unless named otherwise."""

    cost: CostModel | None = None  # c_ctx(n): slope of the chosen regime's linear fit, s/query (κ0 = 0)
    regime: str = "cached"  # the serving regime of ``cost``: "cached" or "stateless"
    recall: RecallModel | None = None  # q_ctx(n), best fit
    q_cart: float | None = None  # LTM recall on held-out paraphrases of the facts it was trained on
    q_cart_points: tuple[tuple[float, float], ...] | None = None  # probe-predicted (n items, q̂_cart) points
    c_upd: float | None = None  # s per consolidation (as measured: teacher + questions + training)
    c_upd_fixed: float | None = None  # s: the student-training part, fixed per consolidation
    c_upd_per_item: float | None = None  # s/item: teacher targets and questions per consolidated item
    r_cart: float | None = None  # s/query overhead of the cartridge
    snr_m: float | None = None  # G2: SNR of the mean gradient over the measured items at initialisation

    def require(self, *names: str) -> Priors:
        """Self, or KeyError naming every missing prior."""
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise KeyError(f"measured curves lack the priors {missing}")
        return self


def _finite(v: Any, field: str) -> float:
    """``v`` as a float, or a ValueError naming the field (NaN/inf in a curves file is reported, never clamped)."""
    x = float(v)
    if not math.isfinite(x):
        raise ValueError(f"measured curves: {field} is {v!r}, not a finite number; re-run `stmltm measure`")
    return x


def priors(curves: dict[str, Any], regime: str = "cached") -> Priors:
    """Every prior the rule takes from ``stmltm measure`` (or ``stmltm demo``) output: the one place that
    parses those sections. Tolerates partial and older files (no ``seconds["questions"]``, no recall split)."""
    if regime not in ("cached", "stateless"):
        raise ValueError(f"regime must be 'cached' or 'stateless', got {regime!r}")
    p = Priors(regime=regime)
    fit = curves.get("cost", {}).get(f"fit_{regime}_linear")
    if fit is not None:
        p.cost = CostModel(0.0, max(0.0, _finite(fit["coef"]["b"], f"cost.fit_{regime}_linear.coef.b")))
    if "recall" in curves:
        p.recall = recall_model_from(curves)
    if curves.get("comparison"):
        p.q_cart = ltm_recall(curves)
    probe = (curves.get("q_cart_probe") or {}).get("points")
    if probe:
        p.q_cart_points = tuple((_finite(n, "q_cart_probe.points.n"), _finite(q, "q_cart_probe.points.q"))
                                for n, q in probe)
    cons = curves.get("consolidation")
    if cons is not None:
        secs = cons.get("seconds", {})
        total = cons.get("c_upd_s", secs.get("total"))
        p.c_upd = None if total is None else _finite(total, "consolidation.c_upd_s")
        if "train" in secs:
            p.c_upd_fixed = float(secs["train"])
        if "teacher" in secs and curves.get("n_facts"):
            p.c_upd_per_item = float(secs["teacher"] + secs.get("questions", 0.0)) / int(curves["n_facts"])
    if "cartridge" in curves:
        p.r_cart = _finite(curves["cartridge"]["r_cart_s"], "cartridge.r_cart_s")
    snr = curves.get("signal", {}).get("per_item_at_init", {}).get("snr_m")
    p.snr_m = None if snr is None else float(snr)
    return p


def curve_values(curves: dict[str, Any]) -> dict[str, Any]:
    """The :mod:`~stmltm_nb.decision.inputs` fields (by path) that a measured-curves file supplies: c_upd (s),
    r_cart (s/query), the cost slope κ1 (s/item, cached regime), the recall fit and q_cart. ``stmltm decide
    --curves FILE`` starts from these; a ``--json`` file and flags given override them."""
    from dataclasses import asdict

    p = priors(curves)
    out: dict[str, Any] = {}
    if p.c_upd is not None:
        out["c_upd"] = p.c_upd
    if p.r_cart is not None:
        out["r_cart"] = p.r_cart
    if p.cost is not None:
        out.update({"cost.kappa0": p.cost.kappa0, "cost.kappa1": p.cost.kappa1, "cost.kappa2": p.cost.kappa2})
    if p.recall is not None:
        out.update({f"recall.{k}": v for k, v in asdict(p.recall).items()})
    if p.q_cart is not None:
        out["q_cart"] = p.q_cart
    return out
