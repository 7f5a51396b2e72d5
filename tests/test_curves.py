import json

import pytest

from stmltm_nb.decision.curves import load_curves, ltm_recall, recall_model_from


def test_ltm_recall_prefers_the_cartridge_facts_split():
    row = {"mode": "LTM (cartridge)", "questions": "train", "recall": 0.8, "recall_cart": 0.9}
    other = {"mode": "LTM (cartridge)", "questions": "heldout", "recall": 0.1, "recall_cart": 0.2}
    assert ltm_recall({"comparison": [other, row]}) == 0.9
    old = dict(row)
    del old["recall_cart"]
    assert ltm_recall({"comparison": [old]}) == 0.8  # files written before the split
    assert ltm_recall({"comparison": []}, default=0.5) == 0.5


def test_load_curves_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="stmltm measure"):
        load_curves(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_curves(bad)


def test_recall_model_from_the_shipped_curves():
    curves = load_curves()
    m = recall_model_from(curves)
    assert m.kind == curves["recall"]["best_fit"]
    pooled = {r["n"]: r["recall"] for r in curves["recall"]["pooled"]}
    assert m(1) >= m(128) and abs(m(1) - pooled[1]) < 0.5
    json.dumps(curves)  # plain JSON, no NaN objects
