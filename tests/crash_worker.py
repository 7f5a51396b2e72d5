"""Subprocess worker for the crash tests: runs a controller on the tiny model and gets killed (SIGKILL)."""

import os
import signal
import sys

from stmltm_nb.decision.controller import Controller, ControllerConfig
from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.facts import load_facts
from stmltm_nb.models import load_tokenizer, tiny_llama


def make(root, steps):
    lm = tiny_llama(load_tokenizer(), seed=0)
    facts = load_facts()[:12]
    ctl = Controller(lm.model, lm.tokenizer, root, {f.id: f.train_questions for f in facts},
                     config=ControllerConfig(check_every=1000, retention_tol=100, gamma_reg=1.0),
                     consolidation=ConsolidationConfig(p=8, steps=steps, batch_size=4, chunk_size=2, k=5))
    return ctl, facts


if __name__ == "__main__":
    root, mode = sys.argv[1], sys.argv[2]
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
    ctl.consolidate()
    print("COMMITTED", flush=True)
