"""Cartridges, caches and STM files load only through safetensors/JSON: no pickle on user-supplied files."""

import pickle
import re
from pathlib import Path

import pytest
import torch

PKG = Path(__file__).resolve().parent.parent / "stmltm_nb"


def test_package_source_never_unpickles():
    offenders = []
    for f in PKG.rglob("*.py"):
        text = f.read_text()
        for pat in (r"torch\.load\(", r"import pickle", r"pickle\.loads?\(", r"weights_only\s*=\s*False", r"import (joblib|dill)"):
            if re.search(pat, text):
                offenders.append(f"{f.name}: {pat}")
    assert not offenders, offenders


def test_loading_user_files_never_calls_pickle(tiny, facts, tmp_path, monkeypatch):
    from stmltm_nb.memory.cartridge import Cartridge
    from stmltm_nb.memory.stm import STMBuffer

    cart = Cartridge.create(tiny, p=8, stm_text=facts[0].text)
    path = cart.save_pretrained(tmp_path / "c")
    buf = STMBuffer(tiny)
    buf.append(facts[0].to_item())
    stm_path = buf.save(tmp_path / "stm.jsonl")

    def forbidden(*a, **k):
        raise AssertionError("pickle-based loading was used")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    Cartridge.from_pretrained(path, tiny)
    STMBuffer.load(stm_path, tiny)


def test_controller_survives_a_torn_log_line_and_reports_a_corrupt_state(tiny, facts, tmp_path):
    from stmltm_nb.decision.controller import Controller

    root = tmp_path / "ctl"
    ctl = Controller(tiny, root, {})
    ctl.ingest(facts[0].to_item(time=1.0), decide_now=False)
    with open(root / "items.jsonl", "a") as f:
        f.write('{"text": "half a line')  # a crash in the middle of an append: never acknowledged
    ctl.close()  # the crashed writer is gone (its lock with it)
    again = Controller(tiny, root, {})
    assert [it.id for it in again.items] == [facts[0].id]
    again.close()
    (root / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match="items.jsonl still holds every item"):
        Controller(tiny, root, {})
    assert (root / "items.jsonl").read_text().count("\n") == 1  # nothing was lost or rewritten
