"""The verdict over (n, Q): which memory the rule serves at each STM size n (items) and number of future queries Q,
from the measured curves, for a serving regime and a price of an error λ (seconds per wrong answer).

Every cell is :func:`~stmltm_nb.decision.switching.decide` on
:func:`~stmltm_nb.decision.curves.measured_inputs` (the served memory's measured recall with its interval, the STM
and retrieval arms, the measured gates), read as one of :data:`~stmltm_nb.decision.switching.VERDICTS`. The n axis
stops at the largest n the recall curve was measured at: beyond it q_ctx(n) is an extrapolation, and the map does
not guess. ``what_if`` replaces measured inputs (e.g. the served recall by the cartridge alone's, retention by no
forgetting) to show what would have to change for consolidation to pay off; such a map says so in its ``label``.
Torch-free."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from stmltm_nb.decision.curves import measured_inputs
from stmltm_nb.decision.curves_record import MeasuredCurves, read_curves
from stmltm_nb.decision.defaults import DEFAULTS
from stmltm_nb.decision.switching import VERDICTS, SwitchInputs, decide, verdict


@dataclass(frozen=True)
class VerdictMap:
    """``codes[i][j]``: the index in :data:`VERDICTS` of the verdict at ``Qs[i]`` queries and ``ns[j]`` items;
    ``blocked[i][j]``: what kept the cartridge from being served there (gate names, "inequality", "arm: …")."""

    regime: str  # "cached" or "stateless" STM serving
    lam: float  # s per wrong answer
    label: str  # "measured", or the what-if in words
    ns: tuple[int, ...]  # STM items
    Qs: tuple[float, ...]  # future queries
    codes: tuple[tuple[int, ...], ...]
    blocked: tuple[tuple[tuple[str, ...], ...], ...]

    def share(self, word: str) -> float:
        """Fraction of the grid's cells (0..1) where the verdict is ``word``."""
        return float(np.mean(np.asarray(self.codes) == VERDICTS.index(word)))

    def at(self, n: float, Q: float) -> str:
        """The verdict at the grid point nearest to (n, Q) (log distance in both)."""
        i, j = self._index(n, Q)
        return VERDICTS[self.codes[i][j]]

    def blocked_at(self, n: float, Q: float) -> tuple[str, ...]:
        i, j = self._index(n, Q)
        return self.blocked[i][j]

    def blockers(self) -> dict[str, float]:
        """How often each reason kept the cartridge out (fraction of cells, 0..1), most frequent first."""
        cells = [b for row in self.blocked for b in row]
        counts: dict[str, int] = {}
        for b in cells:
            for name in b:
                key = "another arm is cheaper" if name.startswith("arm:") else name
                counts[key] = counts.get(key, 0) + 1
        return {k: v / len(cells) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}

    def _index(self, n: float, Q: float) -> tuple[int, int]:
        j = int(np.argmin(np.abs(np.log(np.asarray(self.ns)) - np.log(n))))
        i = int(np.argmin(np.abs(np.log(np.asarray(self.Qs)) - np.log(Q))))
        return i, j


def measured_n_max(curves: Mapping[str, Any]) -> int:
    """The largest STM size n (items) the recall curve was measured at (the ``recall.pooled`` points)."""
    pooled = (curves.get("recall") or {}).get("pooled") or []
    if not pooled:
        raise ValueError("the curves hold no measured recall curve (recall.pooled): run `stmltm measure`")
    return int(max(r["n"] for r in pooled))


def verdict_map(curves: Mapping[str, Any], lam: float = DEFAULTS.lam, regime: str = "cached",
                ns: Sequence[int] | None = None, Qs: Sequence[float] | None = None,
                what_if: Mapping[str, Any] | None = None, label: str = "measured") -> VerdictMap:
    """The verdict on a grid of n (default: 1 to the measured maximum, log-spaced) and Q (default: 1 to 10⁶,
    log-spaced). A ``ns`` beyond the measured range raises ``ValueError``. ``what_if``: SwitchInputs fields to
    replace in every cell (a ``q_cart`` there also re-decides G5's hold-out flag); name it in ``label``."""
    n_max = measured_n_max(curves)
    ns = tuple(int(n) for n in (ns if ns is not None else np.unique(np.geomspace(1, n_max, 24).round())))
    if max(ns) > n_max or min(ns) < 1:
        raise ValueError(f"n must lie in [1, {n_max}] (the measured range of the recall curve), got "
                         f"{min(ns)}..{max(ns)}")
    what_if = dict(what_if or {})
    unknown = sorted(set(what_if) - {f.name for f in fields(SwitchInputs)})
    if unknown:
        raise ValueError(f"what_if names fields SwitchInputs does not have: {unknown}")
    if what_if and label == "measured":
        raise ValueError("a what-if map needs a label that says what was changed")
    Qs = tuple(float(q) for q in (Qs if Qs is not None else np.geomspace(1, 1e6, 25)))
    record = read_curves(curves)  # validated once, not once per cell
    codes, blocked = [], []
    for Q in Qs:
        row_c, row_b = [], []
        for n in ns:
            d = decide(_inputs(record, n, Q, lam, regime, what_if))
            row_c.append(VERDICTS.index(verdict(d.consolidate, d.arm)))
            row_b.append(tuple(d.blocked_by))
        codes.append(tuple(row_c))
        blocked.append(tuple(row_b))
    return VerdictMap(regime=regime, lam=float(lam), label=label, ns=ns, Qs=Qs, codes=tuple(codes),
                      blocked=tuple(blocked))


def _inputs(curves: MeasuredCurves, n: int, Q: float, lam: float, regime: str,
            what_if: Mapping[str, Any]) -> SwitchInputs:
    x = measured_inputs(curves, n, Q, lam, regime=regime)
    if not what_if:
        return x
    x = replace(x, **what_if)
    if "q_cart" in what_if and "holdout_pass" not in what_if:
        x = replace(x, holdout_pass=x.q_cart > min(1.0, x.recall(n) + x.gamma))
    return x


def summary_lines(maps: Sequence[VerdictMap]) -> list[str]:
    """One line per map: the share of the (n, Q) grid under each verdict and the two reasons that most often kept
    the cartridge out (fractions of the grid's cells)."""
    out = []
    for m in maps:
        shares = ", ".join(f"{w.lower()} {m.share(w):.0%}" for w in VERDICTS)
        why = "; ".join(f"{k} ({v:.0%})" for k, v in list(m.blockers().items())[:2]) or "nothing"
        out.append(f"{m.regime} STM, λ = {m.lam:g} s [{m.label}]: {shares} of the grid; kept out by: {why}")
    return out


VERDICT_LAMS = (0.0, DEFAULTS.lam, 50.0)  # s per wrong answer: compute only, the shipped price, errors dear
WHAT_IF_LABEL = "what if: cartridge-alone recall, no forgetting"


def course_maps(curves: Mapping[str, Any], lams: Sequence[float] = VERDICT_LAMS,
                ns: Sequence[int] | None = None, Qs: Sequence[float] | None = None) -> list[VerdictMap]:
    """The maps notebooks 00, 06 and 09 show: cached and stateless STM as measured at each λ, then cached STM
    with the what-if :data:`WHAT_IF_LABEL` (the served memory recalling like the cartridge alone, with its
    interval, and a retention ΔNLL of 0): what would have to change for consolidation to pay off."""
    from stmltm_nb.decision.curves import priors

    alone = priors(curves).q_ltm_alone
    maps = [verdict_map(curves, lam, regime, ns, Qs) for regime in ("cached", "stateless") for lam in lams]
    if alone is not None:
        what_if = {"q_cart": alone.value, "q_cart_lo": alone.lo, "q_cart_hi": alone.hi, "dnll": 0.0,
                   "dnll_lo": None, "dnll_hi": None}
        maps += [verdict_map(curves, lam, "cached", ns, Qs, what_if=what_if, label=WHAT_IF_LABEL) for lam in lams]
    return maps
