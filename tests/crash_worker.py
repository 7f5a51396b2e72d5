"""Subprocess worker for the crash and lock tests: runs a controller on the tiny model and gets killed (SIGKILL).

Modes: ``train`` (killed by the test inside a long training run), ``save`` (kills itself right after the
cartridge weights are written, before the commit record), ``hold`` (ingests the items one by one, printing
``ACK <id>`` once each is durable, then keeps the folder open until killed).
"""

import os
import signal
import sys
import time

from stmltm_nb.decision.controller import Controller, ControllerConfig
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.facts import load_facts
from stmltm_nb.memory.questions import ItemQuestions
from stmltm_nb.models import load_tokenizer, tiny_llama


def make(root, steps):
    lm = tiny_llama(load_tokenizer(), seed=0)
    facts = load_facts()[:12]
    ctl = Controller(lm, root, {f.id: ItemQuestions(f.train_questions) for f in facts},  # no probe: first template
                     config=ControllerConfig(check_every=1000, retention_tol=100, gamma_reg=1.0),
                     consolidation=ConsolidationConfig(p=8, steps=steps, batch_size=4, chunk_size=2, k=5))
    return ctl, facts


def passing(new_items):
    """A check verdict where every new item passes (the tiny random model answers nothing by itself)."""
    return {"q_cart": 1.0, "holdout_passed": [it.id for it in new_items], "holdout_failed": [], "unchecked": [],
            "regression_pass": True, "retention_pass": True}


def hold(root):
    ctl, facts = make(root, steps=2)
    print("OPEN", flush=True)
    for f in facts:
        ctl.ingest(f.to_item(time=1.0), decide_now=False)
        print("ACK", f.id, flush=True)
    print("HELD", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    root, mode = sys.argv[1], sys.argv[2]
    if mode == "hold":
        hold(root)
        sys.exit(0)
    ctl, facts = make(root, steps=100000 if mode == "train" else 2)
    for f in facts:
        if f.id not in {it.id for it in ctl.items}:
            ctl.ingest(f.to_item(time=1.0), decide_now=False)
    print("INGESTED", flush=True)
    if mode == "save":
        import safetensors.torch as st

        real = st.save_file

        def save_then_die(*a, **k):
            real(*a, **k)
            os.kill(os.getpid(), signal.SIGKILL)

        st.save_file = save_then_die
        ctl._checks = lambda cand, new, replay: passing(new)  # commit, so that the weights get written
    ctl.consolidate()
    print("COMMITTED", flush=True)
