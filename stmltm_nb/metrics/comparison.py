"""The comparison table from per-question records (numpy only, no torch).

A *record* is one question asked of one memory: ``mode``, ``kind`` ("train" | "heldout"), ``fact``, ``relation``,
``role`` ("cart": a fact the cartridge was trained on, "resid": a newer fact kept in STM), ``seed`` (the training
seed of a cartridge mode, else None), ``hit`` (0/1), ``s`` (seconds for the greedy answer). Every recall in a row
carries a 95 % bootstrap interval that resamples relations, then facts within them
(:func:`~stmltm_nb.metrics.stats.cluster_bootstrap`); a cartridge mode's recall is the mean over its seeds (each
fact's hits pooled over seeds before resampling), with each seed's value listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from stmltm_nb.metrics.stats import cluster_bootstrap

NO_MEMORY = "no memory"
STM_ALL = "STM (all items)"
RETRIEVAL = "STM + retrieval"
ORACLE = "STM (own chunk, oracle)"
TEACHER = "teacher (fact alone)"
LTM = "LTM (cartridge)"
SERVED = "LTM + residual STM"
RESIDUAL_ONLY = "STM (residual items only)"
STEP0 = "LTM (step 0)"  # the untrained cartridge: the control for retention
MODES = (NO_MEMORY, STM_ALL, RETRIEVAL, ORACLE, TEACHER, LTM, SERVED, RESIDUAL_ONLY)
CARTRIDGE_MODES = (LTM, SERVED, STEP0)
KINDS = ("train", "heldout")


def _interval(rs: Sequence[dict[str, Any]], n_boot: int, seed: int) -> tuple[float | None, float | None,
                                                                                float | None]:
    if not rs:
        return None, None, None
    return cluster_bootstrap([r["relation"] for r in rs], [r["fact"] for r in rs], [r["hit"] for r in rs],
                             n_boot=n_boot, seed=seed)


def _per_seed(rs: Sequence[dict[str, Any]]) -> list[float] | None:
    seeds = sorted({r["seed"] for r in rs if r.get("seed") is not None})
    if not seeds:
        return None
    return [float(np.mean([r["hit"] for r in rs if r.get("seed") == s])) for s in seeds]


def comparison_rows(records: Iterable[dict[str, Any]], split: str | None = None, n_boot: int = 2000,
                    seed: int = 0) -> list[dict[str, Any]]:
    """One row per (mode, kind) in :data:`MODES` order: recall over every fact asked, over the cartridge facts
    (``recall_cart``) and the residual ones (``recall_resid``), each with ``_lo``/``_hi`` (``lo``/``hi`` for the
    whole), ``frac_of_teacher`` (recall / the teacher's recall on the same facts and kind),
    ``frac_of_teacher_cart`` (recall_cart / the teacher's recall on the cartridge facts), ``seeds`` (per-seed
    recall of a cartridge mode), counts and mean seconds per query (``None`` for a row answered in batches: its
    records' seconds are the batch's shared out, not a query's latency)."""
    recs = list(records)
    keys = [(r["mode"], r["kind"], r["fact"], r.get("w", 0), r.get("seed")) for r in recs]
    if len(keys) != len(set(keys)):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"comparison: the question {dup} (mode, kind, fact, wording, seed) is recorded twice")
    out: list[dict[str, Any]] = []
    modes = [m for m in MODES if any(r["mode"] == m for r in recs)]
    modes += sorted({r["mode"] for r in recs} - set(modes))
    teacher = {k: [r for r in recs if r["mode"] == TEACHER and r["kind"] == k] for k in KINDS}
    for mode in modes:
        for kind in KINDS:
            rs = [r for r in recs if r["mode"] == mode and r["kind"] == kind]
            if not rs:
                continue
            rec, lo, hi = _interval(rs, n_boot, seed)
            seeds = _per_seed(rs)
            cart = [r for r in rs if r["role"] == "cart"]
            resid = [r for r in rs if r["role"] == "resid"]
            c, c_lo, c_hi = _interval(cart, n_boot, seed)
            d, d_lo, d_hi = _interval(resid, n_boot, seed)
            asked = {r["fact"] for r in rs}
            t = [r["hit"] for r in teacher[kind] if r["fact"] in asked]
            t_rate = float(np.mean(t)) if t else None
            cart_facts = {r["fact"] for r in cart}
            tc = [r["hit"] for r in teacher[kind] if r["fact"] in cart_facts]
            tc_rate = float(np.mean(tc)) if tc else None
            out.append({"mode": mode, "questions": kind, "split": split, "recall": rec, "lo": lo, "hi": hi,
                        "recall_cart": c, "recall_cart_lo": c_lo, "recall_cart_hi": c_hi,
                        "recall_resid": d, "recall_resid_lo": d_lo, "recall_resid_hi": d_hi,
                        "frac_of_teacher": rec / t_rate if t_rate else None,
                        "frac_of_teacher_cart": c / tc_rate if tc_rate and c is not None else None,
                        "seeds": seeds, "n_questions": len(rs) // max(1, len(seeds or [1])),
                        "n_facts": len(asked), "n_relations": len({r["relation"] for r in rs}),
                        # answered in batches: the seconds are the batch's shared out, not one query's latency
                        "s_per_query": None if any(r.get("batch", 1) > 1 for r in rs)
                        else float(np.mean([r["s"] for r in rs])),
                        "answer_nll": float(np.mean(nll)) if (nll := [r["nll"] for r in rs if "nll" in r]) else None})
    return out


def retention_rows(nll: dict[str, dict[Any, Sequence[float]]], tokens: int, n_boot: int = 2000,
                   seed: int = 0) -> dict[str, Any]:
    """Retention: ``nll[mode][seed]`` = mean NLL (nats/token) of each check passage with that memory (seed None
    for a mode without training seeds; ``nll["no memory"][None]`` is the reference). Each row's ``delta_nll`` is
    paired against no memory over passages (a cartridge mode's per-passage deltas averaged over its seeds first),
    with a bootstrap 95 % interval over passages."""
    from stmltm_nb.metrics.stats import paired_gap

    base = np.asarray(nll[NO_MEMORY][None], float)
    rows = []
    for mode, by_seed in nll.items():
        per_seed = {s: np.asarray(v, float) for s, v in by_seed.items()}
        if any(v.shape != base.shape for v in per_seed.values()):
            raise ValueError(f"retention: {mode} was measured on other passages than no memory")
        mean_nll = np.mean(list(per_seed.values()), axis=0)
        d, lo, hi = paired_gap(mean_nll, base, n_boot=n_boot, seed=seed)
        seeds = sorted(s for s in per_seed if s is not None)
        rows.append({"mode": mode, "nll": float(mean_nll.mean()), "delta_nll": d, "lo": lo, "hi": hi,
                     "seeds": [float((per_seed[s] - base).mean()) for s in seeds] or None})
    return {"passages": int(base.size), "tokens": int(tokens), "rows": rows}


def ci_text(v: float | None, lo: float | None, hi: float | None) -> str:
    """A recall with its interval as text, "0.61 [0.45, 0.75]"; "not measured" for None."""
    return "not measured" if v is None else f"{v:.2f} [{lo:.2f}, {hi:.2f}]"


def display_table(rows: Sequence[dict[str, Any]], kind: str = "heldout"):
    """The comparison rows of one question kind as a readable pandas DataFrame: recall with its interval over every
    fact, the cartridge facts and the residual ones, the share of the teacher's recall, each seed's value."""
    import pandas as pd

    return pd.DataFrame([{
        "memory": r["mode"], "all facts": ci_text(r["recall"], r["lo"], r["hi"]),
        "cartridge facts": ci_text(r["recall_cart"], r["recall_cart_lo"], r["recall_cart_hi"]),
        "residual facts": ci_text(r["recall_resid"], r["recall_resid_lo"], r["recall_resid_hi"]),
        "cartridge facts, of teacher": "" if r.get("frac_of_teacher_cart") is None
        else f"{r['frac_of_teacher_cart']:.0%}",
        "seeds": "" if not r["seeds"] else " / ".join(f"{v:.2f}" for v in r["seeds"]),
        "questions": r["n_questions"], "relations": r["n_relations"],
        "s/query": "not timed (batched)" if r["s_per_query"] is None else round(r["s_per_query"], 3),
    } for r in rows if r["questions"] == kind])


def cartridge_table(rows: Sequence[dict[str, Any]]):
    """One table of the cartridge's facts per memory mode (notebook 03.3): recall on the first trained template and
    on the held-out wordings, each with its 95 % interval (relations, then facts, resampled), the held-out share of
    the teacher's recall, the residual facts' held-out recall beside them, and each training seed's held-out
    recall over all facts (the record keeps per-seed values of that pooled recall only). A mode not asked a question
    kind shows "not asked"."""
    import pandas as pd

    by = {(r["mode"], r["questions"]): r for r in rows}
    out = []
    for mode in dict.fromkeys(r["mode"] for r in rows):
        tr, ho = by.get((mode, "train")), by.get((mode, "heldout"))
        cart = [ci_text(r["recall_cart"], r["recall_cart_lo"], r["recall_cart_hi"]) if r else "not asked"
                for r in (tr, ho)]
        out.append({"memory": mode, "trained template": cart[0], "held-out wordings": cart[1],
                    "held-out, of teacher": "" if not ho or ho.get("frac_of_teacher_cart") is None
                    else f"{ho['frac_of_teacher_cart']:.0%}",
                    "residual facts, held-out": "not asked" if not ho
                    else ci_text(ho["recall_resid"], ho["recall_resid_lo"], ho["recall_resid_hi"]),
                    "all facts, held-out, per seed": "" if not ho or not ho["seeds"]
                    else " / ".join(f"{v:.2f}" for v in ho["seeds"])})
    return pd.DataFrame(out)


def retention_table(retention: dict[str, Any]):
    """The retention rows as a DataFrame: ΔNLL over no memory (nats/token) with its interval over passages."""
    import pandas as pd

    return pd.DataFrame([{"memory": r["mode"], "NLL": round(r["nll"], 3),
                          "ΔNLL vs no memory": f"{r['delta_nll']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]",
                          "seeds": "" if not r["seeds"] else " / ".join(f"{v:+.3f}" for v in r["seeds"])}
                         for r in retention["rows"]])


__all__ = ["ci_text", "display_table", "cartridge_table", "retention_table", "MODES", "CARTRIDGE_MODES", "KINDS", "NO_MEMORY", "STM_ALL", "RETRIEVAL", "ORACLE", "TEACHER", "LTM",
           "SERVED", "RESIDUAL_ONLY", "STEP0", "comparison_rows", "retention_rows"]
