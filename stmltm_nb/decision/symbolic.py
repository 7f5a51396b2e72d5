"""The switching rule in sympy: notation, c_ctx(n), q_ctx(n), A(n), break-even points, EOQ / ski-rental cycles,
m*, and their lambdified numeric forms. No torch; the numeric evaluator and the gates are in
:mod:`stmltm_nb.decision.switching` (which re-exports every name here). Units as there: seconds, items, error rates.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

# ----- notation ------------------------------------------------------------------------------------------------
n, Q, c_upd, r_cart, lam, Delta, eps_d, eta = sp.symbols("n Q c_upd r_cart lambda Delta epsilon_d eta", real=True)
kappa0, kappa1, kappa2 = sp.symbols("kappa0 kappa1 kappa2", real=True)
q0, q_cart, rho, nu, n50, k_hill = sp.symbols("q0 q_cart rho nu n50 k", real=True)
g, beta, T = sp.symbols("g beta T", real=True)  # items per query, ski-rental factor, queries per cycle
dl_bits, delta_, eps_ = sp.symbols("DL delta epsilon", positive=True)

COST_KINDS = ("linear", "quadratic")
RECALL_KINDS = ("linear", "exponential", "hyperbolic", "hill")
# (cost, recall) pairs whose break-even n* has a closed form (linear: rational; exponential: Lambert W;
# hyperbolic: quadratic root; quadratic cost with linear recall: quadratic root)
CLOSED_FORMS = (("linear", "linear"), ("linear", "exponential"), ("linear", "hyperbolic"), ("quadratic", "linear"))

SYMBOL_TABLE = [
    ("n", "STM size", "items"), ("b", "mean tokens per item", "tokens/item"),
    ("Q", "future queries before the next consolidation", "queries"),
    ("c_ctx(n)", "per-query cost with n STM items", "s/query"), ("kappa0, kappa1, kappa2", "c_ctx coefficients", "s, s/item, s/item²"),
    ("r_cart", "per-query overhead of the cartridge", "s/query"), ("c_upd", "one-off update cost", "s"),
    ("q_ctx(n), q_cart", "recall with STM / cartridge", "probability"),
    ("Delta", "L_miss − L_hit (1 for error rate)", "loss"), ("lambda", "price of loss", "s per loss unit per query"),
    ("epsilon_d", "distillation gap", "loss"), ("eta", "hysteresis margin on c_upd", "—"),
    ("gamma", "required quality margin of LTM over STM", "loss"), ("tau", "SNR threshold", "—"),
    ("DL", "description length of the update", "bits"), ("epsilon, delta", "PAC tolerance and confidence", "loss, prob."),
]


def c_ctx_expr(kind: str = "linear") -> sp.Expr:
    """c_ctx(n) in seconds per query."""
    if kind == "linear":
        return kappa0 + kappa1 * n
    if kind == "quadratic":
        return kappa0 + kappa1 * n + kappa2 * n**2
    raise ValueError(f"cost kind must be one of {COST_KINDS}, got {kind!r}")


def q_ctx_expr(kind: str = "hyperbolic") -> sp.Expr:
    """q_ctx(n): STM recall probability with n items."""
    exprs = {
        "linear": q0 - rho * n,
        "exponential": q0 * sp.exp(-n / nu),
        "hyperbolic": q0 / (1 + n / n50),
        "hill": q0 / (1 + (n / n50) ** k_hill),
    }
    if kind not in exprs:
        raise ValueError(f"recall kind must be one of {RECALL_KINDS}, got {kind!r}")
    return exprs[kind]


def advantage_expr(cost: str = "linear", recall: str = "hyperbolic") -> sp.Expr:
    """A(n), seconds per query: cost saving plus priced quality gain of the cartridge over n STM items."""
    return (c_ctx_expr(cost) - r_cart) + lam * Delta * (q_cart - q_ctx_expr(recall)) - lam * eps_d


def break_even_Q_expr(cost: str = "linear", recall: str = "hyperbolic") -> sp.Expr:
    """Q*(n) = (1+η)·c_upd / A(n): queries needed for an update to pay for itself (only when A(n) > 0)."""
    return (1 + eta) * c_upd / advantage_expr(cost, recall)


def break_even_n_solutions(cost: str = "linear", recall: str = "linear") -> list[sp.Expr]:
    """Closed-form roots n* of Q·A(n) = (1+η)·c_upd, where sympy finds them (may be empty: use
    :func:`break_even_n_numeric`)."""
    eq = sp.Eq(Q * advantage_expr(cost, recall), (1 + eta) * c_upd)
    if (cost, recall) not in CLOSED_FORMS:
        return []  # Hill (any k) and the cubic/transcendental mixes: use the numeric solver
    try:
        sols = sp.solve(eq, n)
    except NotImplementedError:
        return []
    return [sp.simplify(s) for s in sols]


def eoq_cycle_expr() -> sp.Expr:
    """Queries per consolidation cycle minimising average cost when A grows linearly (slope K = κ1 + λΔρ per
    item) and STM grows by g items per query: T* = sqrt(2·c_upd / (K·g)) (EOQ, Harris 1913)."""
    K = kappa1 + lam * Delta * rho
    return sp.sqrt(2 * c_upd / (K * g))


def ski_rental_cycle_expr() -> sp.Expr:
    """Queries until the accumulated rent K·g·Σ_{j<T} j reaches β·c_upd: T = ½ + ½·sqrt(1 + 8βc_upd/(Kg))."""
    K = kappa1 + lam * Delta * rho
    return sp.Rational(1, 2) + sp.sqrt(1 + 8 * beta * c_upd / (K * g)) / 2


def m_star_expr(agnostic: bool = False) -> sp.Expr:
    """m* with DL in bits converted to nats: (DL·ln2 + ln(1/δ))/ε, or /(2ε²) in the agnostic case."""
    num = dl_bits * sp.log(2) + sp.log(1 / delta_)
    return num / (2 * eps_**2) if agnostic else num / eps_


# ----- fast numeric evaluation ---------------------------------------------------------------------------------
_PARAM_NAMES = ("kappa0", "kappa1", "kappa2", "r_cart", "lam", "Delta", "eps_d", "q0", "q_cart", "rho", "nu",
                "n50", "k")
_SYMS = (kappa0, kappa1, kappa2, r_cart, lam, Delta, eps_d, q0, q_cart, rho, nu, n50, k_hill)


@cache
def advantage_fn(cost: str = "linear", recall: str = "hyperbolic"):
    """Lambdified A(n, kappa0, kappa1, kappa2, r_cart, lam, Delta, eps_d, q0, q_cart, rho, nu, n50, k)."""
    return sp.lambdify((n, *_SYMS), advantage_expr(cost, recall), modules="math")


@cache
def q_ctx_fn(recall: str = "hyperbolic"):
    return sp.lambdify((n, q0, rho, nu, n50, k_hill), q_ctx_expr(recall), modules="math")
