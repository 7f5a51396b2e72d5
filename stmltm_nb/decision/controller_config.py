"""The streaming controller's knobs (defaults documented in notebook 06), and its priors from measured curves.

The switching inputs among them (λ, η, γ, τ, δ and the priors c_ctx, q_ctx, q_cart, c_upd, r_cart) default to
:data:`~stmltm_nb.decision.defaults.DEFAULTS`, the one home they share with ``stmltm decide`` and the tuner."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from stmltm_nb.decision.defaults import DEFAULTS
from stmltm_nb.decision.online import SHIPPED, rule_spec
from stmltm_nb.decision.switching import CostModel, RecallModel, default_cost, default_recall


@dataclass
class ControllerConfig:
    """Knobs of the streaming rule. Seconds, items and recall fractions as named."""

    check_every: int = 8  # evaluate the rule every k ingested items
    m_floor: int = 16  # a configured floor of the online rule (items), not a bound; G1's m* is computed (gates.g1)
    delta: float = DEFAULTS.delta  # G1: a cartridge as good as predicted fails the hold-out check by chance w.p. ≤ δ
    eta: float = DEFAULTS.eta  # hysteresis on c_upd
    gamma: float = DEFAULTS.gamma  # required margin of LTM over STM (error rate)
    gamma_reg: float = 0.1  # allowed recall drop on protected (previously absorbed) items, each served mode
    retention_tol: float = 0.25  # allowed rise of the general-text NLL, nats/token, each served mode
    lam: float = DEFAULTS.lam  # seconds per wrong answer
    beta: float = 1.0  # ski-rental factor (of the "renewal" policy; the other policies carry their own)
    policy: str = SHIPPED  # the online rule, an id of decision.online.RULES (issue #28: chosen on the tuning streams)
    queries_per_item: float = 4.0  # prior for ω (queries per ingested item) until queries are observed
    ema: float = 0.1  # EMA weight of one ingested item in the query-rate estimate
    cost: CostModel = field(default_factory=default_cost)
    recall: RecallModel = field(default_factory=default_recall)
    q_cart_prior: float = DEFAULTS.q_cart  # held-out recall of a cartridge, until one is measured
    q_cart_points: tuple[tuple[float, float], ...] = ()  # probe-predicted q̂_cart(n) (items, recall); until one
    # is measured they replace q_cart_prior (SwitchInputs.q_cart_at interpolates them)
    c_upd_prior: float = DEFAULTS.c_upd  # s
    r_cart_prior: float = DEFAULTS.r_cart  # s/query
    force_every: int | None = None  # consolidate every k checks regardless (for tests/demos)
    tau: float = DEFAULTS.tau  # G2: SNR_m of the residual items' mean gradient must reach τ (notebook 06)
    snr_gate: bool = True  # measure SNR_m online when every other gate passes (costs a teacher pass, reused)
    snr_max_items: int = 64  # per-item gradients computed at most for this many residual items
    # backoff after a rejected candidate: retry once the residual STM is this many times larger, by reason.
    # Recall (absorbed nothing): the measured q_cart already lowers A(n), so the rule itself waits longer.
    # Regression: more new items dilute the replay, so wait for twice the evidence.
    # Retention: the damage is not in the rule's inputs, so wait longest.
    # incremental updates: warm-start from the serving cartridge (memory.consolidation.update) unless this many
    # updates followed the last full retrain, or the last candidate was rejected / rolled back (then: full retrain)
    incremental: bool = True
    full_retrain_every: int = 4
    update_max_new: int = 16  # more new items than this: full retrain. The update's steps (update_steps) were tuned
    # for +16 items (benchmarks/incremental.py). In a stream recorded without this cap
    # (benchmarks/results/stream_before_update_cap.jsonl) an update of 47 new items saw each of their examples about
    # 2.5 times and absorbed 4 of 47 (held-out recall 0.09); that measured q_cart then blocked G4 for the rest
    backoff_recall: float = 1.5
    backoff_regression: float = 2.0
    backoff_retention: float = 3.0

    def __post_init__(self) -> None:
        rule_spec(self.policy)  # ValueError naming the known ids
        for name in ("backoff_recall", "backoff_regression", "backoff_retention"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 1):
                raise ValueError(f"{name} must be a finite factor >= 1, got {v}")
        if self.update_max_new < 0:
            raise ValueError(f"update_max_new must be >= 0, got {self.update_max_new}")
        if self.check_every < 1:
            raise ValueError(f"check_every must be >= 1, got {self.check_every}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")

    def backoff(self, reason: str) -> float:
        """The backoff factor for a candidate rejected for ``reason`` (see :data:`checks.REASONS`)."""
        factors = {"absorbed nothing": self.backoff_recall, "regression": self.backoff_regression,
                   "retention": self.backoff_retention}
        if reason not in factors:
            raise ValueError(f"unknown rejection reason {reason!r}; known: {sorted(factors)}")
        return factors[reason]

    @classmethod
    def from_curves(cls, curves: dict[str, Any], **overrides: Any) -> ControllerConfig:
        """Priors from ``stmltm measure`` output (:func:`~stmltm_nb.decision.curves.priors`) instead of round
        numbers: c_ctx(n) slope (cached regime), the best q_ctx(n) fit, q_cart (and the probe-predicted q̂_cart(n)
        points when the file has them), c_upd and r_cart. A partial
        file gives the priors it has; ``overrides`` win."""
        from stmltm_nb.decision.curves import priors

        p = priors(curves)
        found = {"cost": p.cost, "recall": p.recall, "q_cart_prior": p.q_cart, "q_cart_points": p.q_cart_points,
                 "c_upd_prior": p.c_upd, "r_cart_prior": p.r_cart}
        return cls(**{**{k: v for k, v in found.items() if v is not None}, **overrides})
