"""The typed record of ``cartridge.json`` (issue 31): each stage writes its own part through one method, the
folder format is unchanged (a record read from a folder's JSON writes the same JSON back, unknown keys kept), and
no module edits the metadata as a free dict. Torch-free."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from stmltm_nb.memory.cartridge_files import FORMAT_VERSION, CartridgeRecord

PKG = Path(__file__).resolve().parents[1] / "stmltm_nb"

PREFIX_JSON = {"format_version": FORMAT_VERSION, "backend": "prefix", "init": "stm", "base_fingerprint": "abc",
               "base_model_type": "llama", "stats": {"steps": 400, "train_seconds": 3000.5}, "p": 32, "num_frozen": 1,
               "items": ["f1", "f2"], "weights_sha256": "00ff"}
LORA_JSON = {"format_version": FORMAT_VERSION, "backend": "lora", "init": "random", "base_fingerprint": "abc",
             "stats": {}, "p": 0, "num_frozen": 0, "lora_rank": 4,
             "manifest": {"parent": 1, "absorbed": ["a"], "checks": {"q_cart": 0.5}}, "from_a_newer_version": [1, 2]}


@pytest.mark.parametrize("meta,shape", [(PREFIX_JSON, ("p", "num_frozen")), (LORA_JSON, ("p", "num_frozen", "lora_rank"))])
def test_a_folders_json_round_trips_through_the_record(meta, shape):
    rec = CartridgeRecord.from_json(meta, shape)
    assert rec.to_json() == meta
    assert json.loads(json.dumps(rec.to_json())) == meta
    assert rec.shape == {k: meta[k] for k in shape}


def test_the_record_hands_out_copies_and_read_only_views():
    rec = CartridgeRecord.from_json(PREFIX_JSON, ("p", "num_frozen"))
    out = rec.to_json()
    out["stats"]["steps"] = 1
    out["items"].append("f3")
    assert rec.to_json() == PREFIX_JSON
    with pytest.raises(TypeError):
        rec.stats["steps"] = 1  # a read-only view
    with pytest.raises(TypeError):
        rec.shape["p"] = 3
    source = {"steps": 3}
    built = CartridgeRecord(backend="prefix", base_fingerprint="x", init="stm", shape={"p": 4}, stats=source)
    source["steps"] = 9  # the caller's dict stays the caller's
    assert built.stats == {"steps": 3}


def test_each_stage_writes_its_own_part():
    rec = CartridgeRecord(backend="prefix", base_fingerprint="abc", init="stm", shape={"p": 8, "num_frozen": 1})
    assert rec.to_json()["stats"] == {} and "items" not in rec.to_json()
    trained = rec.trained({"steps": 10, "train_seconds": 1.5})
    assert trained.stats == {"steps": 10, "train_seconds": 1.5} and rec.stats == {}
    absorbed = trained.absorbing(["a", "b", "a"], c_upd_seconds=2.0)
    assert absorbed.items == ("a", "b") and absorbed.stats == {"steps": 10, "train_seconds": 1.5, "c_upd_seconds": 2.0}
    updated = absorbed.trained({"steps": 3}).absorbing([*absorbed.items, "c"], update={"new_items": 1})
    assert updated.items == ("a", "b", "c") and updated.stats == {"steps": 3, "update": {"new_items": 1}}
    committed = updated.with_manifest({"parent": 0, "absorbed": ["c"]}).saved("beef")
    assert committed.to_json()["manifest"] == {"parent": 0, "absorbed": ["c"]}
    assert committed.to_json()["weights_sha256"] == "beef" and updated.weights_sha256 is None
    with pytest.raises(AttributeError):
        committed.items = ()  # frozen


def _meta_writes(tree: ast.AST) -> list[int]:
    """Lines that store into ``<x>.meta[...]`` or assign ``<x>.meta`` (the free-dict edits the record replaced)."""
    out = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            base = t.value if isinstance(t, ast.Subscript) else t
            while isinstance(base, ast.Subscript):
                base = base.value
            if isinstance(base, ast.Attribute) and base.attr == "meta":
                out.append(node.lineno)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("update", "append", "extend", "setdefault", "pop", "clear", "insert")):
            inner = node.func.value
            while isinstance(inner, ast.Subscript):
                inner = inner.value
            if isinstance(inner, ast.Attribute) and inner.attr == "meta":
                out.append(node.lineno)
    return out


@pytest.mark.parametrize("snippet,flagged", [
    ('cart.meta["items"] = []', True), ('cart.meta["stats"]["update"] = {}', True), ("cart.meta = {}", True),
    ('cart.meta["stats"].update(a=1)', True), ('cart.meta["items"].append("x")', True),
    ('cart.meta.setdefault("items", [])', True), ('cart.meta.pop("manifest")', True), ('x = cart.meta["stats"]', False),
    ("cart.record = cart.record.trained({})", False)])
def test_the_meta_write_finder_finds_what_it_should(snippet, flagged):
    assert bool(_meta_writes(ast.parse(snippet))) is flagged


def test_no_module_edits_cartridge_metadata_as_a_dict():
    found = {str(p.relative_to(PKG)): lines for p in sorted(PKG.rglob("*.py"))
             if (lines := _meta_writes(ast.parse(p.read_text())))}
    assert not found, f"edit a cartridge's record through CartridgeRecord's methods, not .meta: {found}"
