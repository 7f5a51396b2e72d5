"""The one home of the switching inputs' defaults: every number the rule takes when it is neither given nor measured.

:data:`DEFAULTS` is read by :class:`~stmltm_nb.decision.switching.SwitchInputs` (its field defaults), the
``stmltm decide`` flags and JSON schema (:data:`~stmltm_nb.decision.inputs.FIELDS`), the controller
(:class:`~stmltm_nb.decision.controller_config.ControllerConfig`: λ, η, γ, τ, δ and its priors until curves are
measured), ``stmltm stream`` (``--lam``, ``--tau``), the tuner's start values and presets, the demo's decision and the
policy simulator's world. Change a number here and every one of them follows; ``tests/test_defaults.py`` checks
that they do. Torch-free, and it imports nothing from the rule (the rule imports it).

Units as in :mod:`~stmltm_nb.decision.switching`: seconds for costs, items for n, error rates for loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from stmltm_nb.metrics.ltm_bars import MAX_DNLL


@dataclass(frozen=True)
class Defaults:
    """The switching inputs' defaults, one value per input (frozen: change it here, not at run time)."""

    # the situation ``stmltm decide`` evaluates when no flag says otherwise (also the tuner's and the demo's Q)
    n: float = 64.0  # STM items
    Q: float = 1000.0  # future queries before the next consolidation
    # priors until measured (``stmltm decide`` without --curves, the controller before curves, the tuner without)
    c_upd: float = 600.0  # s, one update
    r_cart: float = 0.01  # s/query, the cartridge's overhead
    kappa0: float = 0.0  # s/query, c_ctx(n) intercept
    kappa1: float = 0.001  # s/item, c_ctx(n) slope
    kappa2: float = 0.0  # s/item², c_ctx(n) curvature
    recall_kind: str = "hyperbolic"  # q_ctx(n) family (symbolic.RECALL_KINDS)
    q0: float = 1.0  # recall at n → 0
    rho: float = 0.0  # 1/item, linear family's slope
    nu: float = 50.0  # items, exponential family's scale
    n50: float = 16.0  # items, hyperbolic/Hill half-recall size
    k: float = 1.0  # Hill exponent
    q_cart: float = 0.7  # held-out recall of a cartridge (served memory), until one is measured
    retrieval_kappa0: float = 0.0  # s/query, c_ret(n) intercept (the retrieval arm, when its recall is given)
    retrieval_kappa1: float = 0.0  # s/query per item, c_ret(n) slope
    # the rule's price and thresholds
    lam: float = 5.0  # λ, s per wrong answer: one price for decide, the controller, the tuner and the demo
    Delta: float = 1.0  # Δ = L_miss − L_hit, loss
    eps_d: float = 0.0  # distillation gap, loss
    eta: float = 0.1  # η, hysteresis on c_upd (damps thrashing when Q·A hovers around c_upd; notebook 06)
    gamma: float = 0.0  # γ, required margin of LTM over STM, error rate
    tau: float = 1.0  # τ, G2's SNR threshold (50 % of the ideal SGD step; notebook 06)
    delta: float = 0.05  # δ, G1's risk
    epsilon: float = 0.05  # the textbook (logged) m*'s error rate
    q_tol: float = 0.0  # recall: extra slack of the equal-quality test (0: intervals must overlap)
    dnll_tol: float = MAX_DNLL  # nats/token: G6 blocks when the served memory's ΔNLL lower bound exceeds it


DEFAULTS = Defaults()
