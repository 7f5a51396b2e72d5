"""The online switching rule, shared by :class:`~stmltm_nb.decision.controller.Controller` and the policy
simulator (:class:`~stmltm_nb.decision.policies.InequalityPolicy`). Torch-free.

Time runs in **ticks**: one ingested item in the controller, one stream step in the simulator. The rule never
knows how long the stream is, nor anything about the future: it sees only what :meth:`OnlineRule.observe` told it.

- Query rate ω̂ (queries per tick): an exponential moving average of the observed rate; ``prior_rate`` until
  the first query is observed (None: no decision before it).
- Q̂ = ω̂·t: the queries a cycle as long as the current one serves (t: ticks since the last consolidation).
- Rent R = Σ queries × max(0, A) since the last consolidation (seconds): the ski-rental accumulator.
- Consolidate when n ≥ m_floor, no backoff holds, and either trigger fires:

      renewal:      Q̂ · A(n) ≥ (1+η)·c_upd + R     (the current rent rate ω̂·A has reached the cycle's average
                                                       cost ((1+η)c_upd + R)/t: renewal-reward stopping)
      ski rental:   R ≥ β·(1+η)·c_upd              (forecast-free, 2-competitive for β = 1)

  ``mode="ski"`` keeps the ski-rental trigger only.
- Backoff: after a rejected candidate, wait until the residual STM reaches ``ceil(factor · n)`` items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from stmltm_nb.decision.switching import SkiRental

MODES = ("renewal", "ski")


@dataclass
class OnlineDecision:
    """One evaluation of the rule. ``trigger`` is "renewal", "ski-rental" or None; seconds unless named."""

    go: bool  # evidence, no backoff, and a trigger fired
    trigger: str | None
    cooling: bool  # held back by the backoff after a rejected candidate
    evidence: bool  # n ≥ m_floor
    terms: dict[str, Any]

    @property
    def blocked_by(self) -> list[str]:
        """Why it waits: "backoff after rollback", "m_floor", "inequality" (no trigger fired)."""
        out = ["backoff after rollback"] if self.cooling else []
        if not self.evidence:
            out.append("m_floor")
        if self.trigger is None:
            out.append("inequality")
        return out


@dataclass
class OnlineRule:
    """Query-rate estimate, ski-rental rent, renewal trigger and backoff: the one online rule.

    Call :meth:`observe` after queries were served, :meth:`evaluate` to decide, :meth:`consolidated` after a
    committed consolidation and :meth:`back_off` after a rejected candidate.
    """

    beta: float = 1.0  # ski-rental factor
    eta: float = 0.0  # hysteresis on c_upd
    m_floor: int = 1  # residual items needed before a consolidation
    ema: float = 0.1  # EMA weight of one tick in the query-rate estimate
    prior_rate: float | None = None  # queries per tick until a query is observed
    mode: str = "renewal"
    observed_rate: float | None = None  # queries per tick (EMA), None before the first query
    elapsed: float = 0.0  # ticks since the last consolidation
    retry_at_n: int = 0  # backoff: no consolidation while n < retry_at_n
    rent: SkiRental = field(default_factory=SkiRental)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not 0 < self.ema <= 1:
            raise ValueError(f"ema must be in (0, 1], got {self.ema}")
        self.rent.beta = self.beta

    @property
    def rate(self) -> float | None:
        """ω̂, queries per tick: the observed EMA, else the prior (None: nothing known yet)."""
        return self.observed_rate if self.observed_rate is not None else self.prior_rate

    def q_hat(self) -> float:
        """Q̂ = ω̂·t, queries (0 while no rate is known)."""
        return (self.rate or 0.0) * self.elapsed

    def observe(self, advantage_s: float, ticks: float = 1.0, queries: float | None = None) -> None:
        """``ticks`` ticks passed, serving ``queries`` queries at per-query advantage ``advantage_s`` (seconds).
        ``queries=None``: not observed (no query traffic seen yet), the rent uses the expected ω̂·ticks."""
        if not (math.isfinite(ticks) and ticks >= 0):
            raise ValueError(f"ticks must be finite and >= 0, got {ticks}")
        if queries is not None and queries > 0 and self.observed_rate is None:
            self.observed_rate = queries / max(ticks, 1e-12)
        elif queries is not None and self.observed_rate is not None and ticks > 0:
            w = 1.0 - (1.0 - self.ema) ** ticks
            self.observed_rate = (1 - w) * self.observed_rate + w * queries / ticks
        served = queries if queries is not None else (self.rate or 0.0) * ticks
        self.rent.observe(advantage_s, served)
        self.elapsed += ticks

    def evaluate(self, n: float, advantage_s: float, c_upd_s: float) -> OnlineDecision:
        """Decide with ``n`` residual items, per-query advantage A(n) (s) and update cost c_upd (s). Pure."""
        c_eff = (1 + self.eta) * c_upd_s
        q_hat = self.q_hat()
        lhs = q_hat * advantage_s if advantage_s > 0 else 0.0
        renewal = self.mode == "renewal" and self.rate is not None and advantage_s > 0 and lhs >= c_eff + self.rent.rent
        ski = self.rent.should_consolidate(c_eff)
        trigger = "renewal" if renewal else ("ski-rental" if ski else None)
        evidence = n >= self.m_floor
        cooling = n < self.retry_at_n
        terms = {"Q_hat": q_hat, "rate": self.rate, "elapsed": self.elapsed, "A": advantage_s, "rent": self.rent.rent,
                 "renewal_lhs": lhs, "renewal_rhs": c_eff + self.rent.rent, "ski_rhs": self.beta * c_eff,
                 "retry_at_n": self.retry_at_n}
        return OnlineDecision(evidence and not cooling and trigger is not None, trigger, cooling, evidence, terms)

    def consolidated(self) -> None:
        """A consolidation was committed: a new cycle starts (rent, clock and backoff reset)."""
        self.rent.reset()
        self.elapsed = 0.0
        self.retry_at_n = 0

    def back_off(self, n: float, factor: float) -> int:
        """A candidate trained on ``n`` items was rejected: retry once the residual STM has ``ceil(factor·n)``
        items (the same evidence would fail the same way). Returns the new threshold."""
        if not (math.isfinite(factor) and factor >= 1):
            raise ValueError(f"backoff factor must be >= 1, got {factor}")
        self.retry_at_n = max(int(math.ceil(factor * n)), int(n) + 1)
        return self.retry_at_n
