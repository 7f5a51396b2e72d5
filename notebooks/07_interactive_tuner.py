# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Interactive threshold tuner
#
# Sliders for Q, γ, τ, λ, c_upd, r_cart and the STM cost slope, driving the decision and its break-even plots; presets from the measured curves.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/stmltm-nb/stmltm-nb/blob/main/notebooks/07_interactive_tuner.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/stmltm-nb/stmltm-nb/main?labpath=notebooks%2F07_interactive_tuner.ipynb)
#
# **Learning goals**
# - explore where consolidation pays off
# - see which gate blocks a decision, in words
# - compare the cached and stateless presets
#
# **Prerequisites:** notebooks 05–06.
#
# **Runtime:** seconds (no model is loaded; curves come from JSON). Set `STMLTM_FAST=1` for a quick pass (CI does).

# %%
# Setup: on Colab, install stmltm-nb from its repository; anywhere else nothing is downloaded.
import os
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    import subprocess

    subprocess.run(["git", "clone", "--depth", "1", "https://github.com/stmltm-nb/stmltm-nb"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "stmltm-nb[model]"], check=True)
    sys.path.insert(0, "stmltm-nb")
    os.environ["STMLTM_USE_HUB"] = "1"  # online: SmolLM2-135M-Instruct from the Hugging Face Hub

from stmltm_nb import notebook_setup

FAST = notebook_setup()  # seeds, plotly renderer, prints the fast mode (STMLTM_FAST=1 shrinks the work)

# %% [markdown]
# Move a slider; the decision, the blocking gate and both plots update. Left: the amortised saving Q·A(n)
# against the update cost (dashed). Right: the (n, Q) region where the rule says *consolidate* (green). The
# preset menu loads the measured curves for the cached or stateless serving regime. This notebook is also the
# Voilà dashboard: `voila notebooks/07_interactive_tuner.ipynb`.

# %%
from IPython.display import display

from stmltm_nb.apps.tuner import make_tuner

tuner = make_tuner()
display(tuner.widget)

# %% [markdown]
# The same decision from code (what the sliders show right now):

# %%
# NBVAL_CHECK_OUTPUT
d = tuner.last
print("consolidate" if d.consolidate else "wait", "|", d.explanation)

# %% [markdown]
# ## Summary
#
# - The rule is cheap enough to evaluate on every slider move (lambdified sympy).
# - Pricing errors (λ) and the serving regime move the boundary most.
#
# ## Exercises
#
# 1. Find the smallest Q at which consolidation pays for n = 64 in each preset.
# 2. Lower the measured SNR below τ. Which gate blocks, and what does the rule say?
