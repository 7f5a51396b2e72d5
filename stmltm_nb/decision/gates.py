"""The switching rule's evidence gates G1–G5 as logged records, and the sample sizes behind G1 (no torch).

Each :class:`Gate` carries its measured value, threshold and unit, and whether it is enforced: a gate that is
vacuous on this model (G3) is logged with its value and never blocks. The rule that combines them is
:func:`~stmltm_nb.decision.switching.decide`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Gate:
    name: str
    passed: bool  # the test's outcome (True when not measured: an unmeasured gate does not block; see ``state``)
    value: float | bool | None
    threshold: float | None
    measured: bool
    rule: str
    unit: str = ""
    enforced: bool = True  # False: logged with its value, never blocks (G3 here)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> bool:
        return self.enforced and not self.passed

    @property
    def state(self) -> str:
        """What a report prints: "not measured" (never "pass" without a value), "pass", "BLOCK", or
        "fail (logged, not enforced)"."""
        if not self.measured:
            return "not measured"
        return "pass" if self.passed else ("BLOCK" if self.enforced else "fail (logged, not enforced)")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state}


def bernoulli_kl(p: float, q: float) -> float:
    """KL(Bern(p) ‖ Bern(q)) in nats."""
    def term(a: float, b: float) -> float:
        return 0.0 if a == 0 else (math.inf if b == 0 else a * math.log(a / b))

    return term(p, q) + term(1 - p, 1 - q)


def m_star_evidence(q_stm: float, q_cart: float, delta: float = 0.05) -> float:
    """G1's sample size (items, one held-out probe each): ln(1/δ) / KL(q_stm ‖ q_cart). By the Chernoff bound, a
    cartridge whose recall really is ``q_cart`` scores at or below ``q_stm`` on m probes with probability
    ≤ exp(−m·KL): from m* items on, a cartridge as good as predicted fails the hold-out check by bad luck with
    probability ≤ δ. inf when the cartridge is not predicted to beat ``q_stm`` (no m makes the check passable)."""
    kl = bernoulli_kl(q_stm, q_cart) if q_cart > q_stm else 0.0
    return math.log(1 / delta) / kl if kl > 0 else math.inf


def m_star_textbook(dl_bits: float, epsilon: float, delta: float = 0.05) -> float:
    """The realisable Occam m* = (DL·ln2 + ln(1/δ)) / ε (evidence units), shown beside G1; vacuous at Mbit DL."""
    return (dl_bits * math.log(2) + math.log(1 / delta)) / epsilon


def g1(m: float | None, m_star: float | None, q_stm: float, q_cart: float, gamma: float = 0.0,
       delta: float = 0.05, dl_bits: float | None = None, epsilon: float = 0.05) -> Gate:
    """G1 (items): m ≥ m*, with the Chernoff m* of :func:`m_star_evidence` against the bar q_ctx(n) + γ that G4
    and the hold-out check apply (or ``m_star`` when given); the textbook m* in ``detail`` when DL(Δφ) (bits) is
    known, never enforced."""
    target = min(1.0, max(0.0, q_stm + gamma))
    thr = m_star if m_star is not None else m_star_evidence(target, q_cart, delta)
    detail: dict[str, Any] = {"delta": delta, "bar": target, "q_cart": q_cart,
                              "m_star_rule": "given" if m_star is not None else "ln(1/δ)/KL(q_ctx(n) + γ ‖ q̂_cart(n))"}
    if dl_bits is not None:
        detail.update(m_star_textbook=m_star_textbook(dl_bits, epsilon, delta), dl_bits=dl_bits, epsilon=epsilon,
                      textbook_enforced=False)
    return Gate("G1 sample size", m is None or m >= thr, m, thr, m is not None, "m ≥ m*", "items", detail=detail)


def g2(snr: float | None, snr_lo: float | None, tau: float) -> Gate:
    """G2 (dimensionless): the bootstrap lower bound of SNR_m ≥ τ when given, else SNR_m itself."""
    v = snr_lo if snr_lo is not None else snr
    rule = "SNR_m lower bound ≥ τ" if snr_lo is not None else "SNR_m ≥ τ"
    return Gate("G2 SNR", v is None or v >= tau, v, tau, v is not None, rule,
                "dimensionless (SNR of the mean gradient over the m items)", detail={"snr_m": snr})


def g6(dnll: float | None, dnll_lo: float | None, dnll_hi: float | None, tol: float) -> Gate:
    """G6 retention (nats/token): the served memory's general-text NLL rise over no memory, paired over passages.
    Blocks when the rise is resolved above the tolerance: its bootstrap lower bound (else the point value) > ``tol``."""
    v = dnll_lo if dnll_lo is not None else dnll
    rule = "ΔNLL lower bound ≤ tolerance" if dnll_lo is not None else "ΔNLL ≤ tolerance"
    return Gate("G6 retention", v is None or v <= tol, v, tol, v is not None, rule,
                "nats/token (served memory minus no memory, general text)",
                detail={"delta_nll": dnll, "lo": dnll_lo, "hi": dnll_hi})
