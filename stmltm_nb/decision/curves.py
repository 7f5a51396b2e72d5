"""The measured curves (``data/measured_curves.json``, written by ``stmltm measure``) and the models fitted to
them, read without torch so the tuner, the policy simulator and the controller share one reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stmltm_nb.decision.switching import RecallModel


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


def ltm_recall(curves: dict[str, Any], default: float = 0.9) -> float:
    """q_cart: the cartridge's recall on the trained templates of the facts it was trained on (older files,
    without the split, give the recall over every fact asked)."""
    for r in curves.get("comparison", []):
        if r["mode"] == "LTM (cartridge)" and r["questions"] == "train":
            v = r.get("recall_cart", r["recall"])
            return float(r["recall"] if v is None else v)
    return default
