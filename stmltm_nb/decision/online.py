"""The online switching rule, shared by :class:`~stmltm_nb.decision.controller.Controller` and the policy
simulator (:class:`~stmltm_nb.decision.policies.InequalityPolicy`). Torch-free.

Time runs in **ticks**: one ingested item in the controller, one stream step in the simulator. The rule never
knows how long the stream is, nor anything about the future: it sees only what :meth:`OnlineRule.observe` told it.

- Query rate ω̂ (queries per tick): an exponential moving average of the observed rate; ``prior_rate`` until
  the first query is observed (None: no decision before it).
- Q̂ = ω̂·t: the queries a cycle as long as the current one serves (t: ticks since the last consolidation).
- Rent R = Σ queries × max(0, A) since the last consolidation (seconds): the ski-rental accumulator.
- Consolidate when n ≥ m_floor, no backoff holds, and the mode's trigger fires (c = (1+η)·c_upd(n)):

      "ski"        R ≥ β·c                     deterministic break-even (ski rental); β = 1: 2-competitive
      "ski-random" R ≥ z·c, z ~ e^z/(e−1) on [0, 1], drawn afresh each cycle from ``seed``: randomised ski rental,
                   e/(e−1)-competitive in expectation (Karlin, Manasse, McGeoch, Owicki 1994)
      "forecast"   R ≥ λ·c if the forecast says waiting will cost c, else R ≥ c/λ (Purohit, Svitkina, Kumar 2018;
                   trust λ ∈ (0, 1]: (1+λ)-consistent, (1+1/λ)-robust). The forecast is the rate estimate the rule
                   keeps: Q̂·A(n) = ω̂·t·A(n) ≥ c, "the next t ticks bring as many queries as the last t, at today's
                   A" (the renewal trigger's left side; no rate observed yet: no forecast, R ≥ c/λ).
      "renewal"    Q̂·A(n) ≥ c + R  or  R ≥ β·c (the rule shipped first, before issue #28; no competitive bound: the
                   renewal trigger may fire on a tiny rent)

  The bounds on the simulator's cost model (arrivals, a per-item update cost, rent that comes one step at a time)
  are derived in :mod:`~stmltm_nb.decision.bounds`; they need η = 0 and m_floor = 1.
- Backoff: after a rejected candidate, wait until the residual STM reaches ``ceil(factor · n)`` items.

:data:`RULES` is the table of rules as objects with an id (:class:`RuleSpec`); the simulator
(:mod:`~stmltm_nb.decision.policies`), ``benchmarks/policies.py``, notebook 08 and the controller read it, and
:data:`SHIPPED` names the default, chosen on the tuning streams (``benchmarks/results/policy_regret.json``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from stmltm_nb.decision.switching import SkiRental

MODES = ("renewal", "ski", "ski-random", "forecast")


def draw_ski_threshold(rng: random.Random) -> float:
    """z with density e^z/(e−1) on [0, 1] (inverse CDF: z = ln(1 + u·(e−1))): randomised ski rental's threshold."""
    return math.log1p(rng.random() * (math.e - 1.0))


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
    trust: float = 1.0  # λ of the "forecast" mode, in (0, 1]: 1 ignores the forecast, → 0 trusts it fully
    seed: int | None = None  # "ski-random": seeds the per-cycle thresholds
    observed_rate: float | None = None  # queries per tick (EMA), None before the first query
    elapsed: float = 0.0  # ticks since the last consolidation
    retry_at_n: int = 0  # backoff: no consolidation while n < retry_at_n
    rent: SkiRental = field(default_factory=SkiRental)
    z: float = field(default=1.0, init=False)  # "ski-random": this cycle's threshold factor

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not 0 < self.ema <= 1:
            raise ValueError(f"ema must be in (0, 1], got {self.ema}")
        if not (isinstance(self.trust, (int, float)) and math.isfinite(self.trust) and 0 < self.trust <= 1):
            raise ValueError(f"trust (λ of the forecast rule) must be in (0, 1], got {self.trust!r}")
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be finite and > 0, got {self.beta}")
        if not (math.isfinite(self.eta) and self.eta >= 0):
            raise ValueError(f"eta must be finite and >= 0, got {self.eta}")
        self.rent.beta = self.beta
        self._rng = random.Random(self.seed)
        self._draw()

    def _draw(self) -> None:
        if self.mode == "ski-random":
            self.z = draw_ski_threshold(self._rng)

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
        if queries is not None and not (math.isfinite(queries) and queries >= 0):
            raise ValueError(f"queries must be finite and >= 0, got {queries}")
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
        rent = self.rent.rent
        forecast_long = None
        if self.mode == "forecast":  # forecast: the next t ticks at rate ω̂ and today's A pay c on their own
            forecast_long = self.rate is not None and lhs >= c_eff
            factor = self.trust if forecast_long else 1.0 / self.trust
        else:
            factor = self.z if self.mode == "ski-random" else self.beta
        renewal = self.mode == "renewal" and self.rate is not None and advantage_s > 0 and lhs >= c_eff + rent
        ski = rent >= factor * c_eff
        trigger = "renewal" if renewal else ("ski-rental" if ski else None)
        evidence = n >= self.m_floor
        cooling = n < self.retry_at_n
        terms = {"Q_hat": q_hat, "rate": self.rate, "elapsed": self.elapsed, "A": advantage_s, "rent": rent,
                 "renewal_lhs": lhs, "renewal_rhs": c_eff + rent, "ski_rhs": factor * c_eff,
                 "threshold_factor": factor, "forecast_long": forecast_long, "retry_at_n": self.retry_at_n}
        return OnlineDecision(evidence and not cooling and trigger is not None, trigger, cooling, evidence, terms)

    def consolidated(self) -> None:
        """A consolidation was committed: a new cycle starts (rent, clock and backoff reset)."""
        self.rent.reset()
        self.elapsed = 0.0
        self.retry_at_n = 0
        self._draw()

    def back_off(self, n: float, factor: float) -> int:
        """A candidate trained on ``n`` items was rejected: retry once the residual STM has ``ceil(factor·n)``
        items (the same evidence would fail the same way). Returns the new threshold."""
        if not (math.isfinite(factor) and factor >= 1):
            raise ValueError(f"backoff factor must be >= 1, got {factor}")
        self.retry_at_n = max(int(math.ceil(factor * n)), int(n) + 1)
        return self.retry_at_n


@dataclass(frozen=True)
class RuleSpec:
    """One online rule of the policy table, as an object with a stable ``id`` (never parsed from ``label``).

    ``mode``, ``beta`` and ``trust`` configure :class:`OnlineRule`; ``theta`` is (lowest, highest) threshold
    factor θ the rule may consolidate at (R ≥ θ·c_upd), which is what the bound of
    :func:`~stmltm_nb.decision.bounds.stream_bound` needs; ``randomised`` rules are judged by their mean over
    their own seeds (their bound holds in expectation).
    """

    id: str
    label: str
    mode: str
    beta: float = 1.0
    trust: float = 1.0
    eta: float = 0.0
    m_floor: int = 1

    def __post_init__(self) -> None:
        OnlineRule(mode=self.mode, beta=self.beta, trust=self.trust, eta=self.eta)  # validates the knobs

    @property
    def randomised(self) -> bool:
        return self.mode == "ski-random"

    @property
    def theta(self) -> tuple[float, float]:
        if self.mode == "ski":
            return self.beta, self.beta
        if self.mode == "ski-random":
            return 0.0, 1.0
        if self.mode == "forecast":
            return self.trust, 1.0 / self.trust
        return 0.0, self.beta  # renewal: may fire on any rent

    def rule(self, seed: int | None = None, **overrides: Any) -> OnlineRule:
        """A fresh :class:`OnlineRule` for this spec (``seed``: the randomised rule's draws; ``overrides``: other
        OnlineRule fields, e.g. the controller's ``prior_rate``)."""
        kw = {"mode": self.mode, "beta": self.beta, "trust": self.trust, "eta": self.eta, "m_floor": self.m_floor,
              "seed": seed, **overrides}
        return OnlineRule(**kw)


RULES: dict[str, RuleSpec] = {r.id: r for r in (
    RuleSpec("break-even", "break-even (ski rental, β = 1)", "ski"),
    RuleSpec("patient-2", "patient break-even (β = 2)", "ski", beta=2.0),
    RuleSpec("ski-random", "randomised ski rental", "ski-random"),
    RuleSpec("forecast-0.5", "forecast, trust λ = 0.5", "forecast", trust=0.5),
    RuleSpec("forecast-0.2", "forecast, trust λ = 0.2", "forecast", trust=0.2),
    RuleSpec("renewal", "renewal + rent (the rule shipped first)", "renewal", eta=0.1, m_floor=16),
)}
"""The policy table: every online rule the simulator, the benchmark, notebook 08 and the controller know."""

SHIPPED = "patient-2"
"""The default rule (:class:`~stmltm_nb.decision.controller_config.ControllerConfig` ``policy``): the rule with a
bound whose mean regret over the tuning streams is lowest (``benchmarks/policies.py``; a test checks it)."""


def rule_spec(rule_id: str) -> RuleSpec:
    """The :class:`RuleSpec` of ``rule_id``; ValueError naming the known ids otherwise."""
    try:
        return RULES[rule_id]
    except KeyError:
        raise ValueError(f"policy must be one of {sorted(RULES)}, got {rule_id!r}") from None
