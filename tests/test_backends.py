"""Memory backends (issue 31): one registry, no backend name compared anywhere else in the package, and a toy
backend that a test adds by registering it (no other file touched) trains, serves, saves, loads and updates.

Everything above the last test is torch-free; the last one trains on the tiny random Llama."""

from __future__ import annotations

import ast
import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from stmltm_nb.memory.backends import (
    BACKENDS,
    DEFAULT_BACKEND,
    AdapterBackend,
    Backend,
    MetaField,
    backend_named,
    register_backend,
    unregister_backend,
)
from stmltm_nb.memory.cartridge_files import META_FILE, CartridgeError, read_meta
from stmltm_nb.memory.config import ConsolidationConfig

PKG = Path(__file__).resolve().parents[1] / "stmltm_nb"
REGISTRY = PKG / "memory" / "backends.py"
BUILT_IN = {"prefix", "lora"}


class ToyIA3(AdapterBackend):
    """A toy backend: (IA)³ learned scales on k, v and the MLP's down projection (PEFT ``IA3Config``) of a private
    model copy. It has no size field, so it reads no config field and records nothing in ``cartridge.json``."""

    name = "toy_ia3"
    label = "(IA)³"

    meta_fields = (MetaField("ia3_targets", str),)

    def shape(self, *, ia3_targets: str = "k_proj,v_proj,down_proj", **_: Any) -> dict[str, Any]:
        """``ia3_targets``: the comma-separated module names that get learned scales (a size field only this
        backend reads, recorded in ``cartridge.json`` and read back on load)."""
        if not isinstance(ia3_targets, str) or not ia3_targets:
            raise CartridgeError(f"ia3_targets must name modules, got {ia3_targets!r}")
        return {"ia3_targets": ia3_targets}

    def peft_config(self, shape: Any) -> Any:
        from peft import IA3Config

        targets = shape["ia3_targets"].split(",")
        return IA3Config(task_type="CAUSAL_LM", target_modules=targets,
                         feedforward_modules=[t for t in targets if t in ("down_proj", "up_proj", "gate_proj")])


@pytest.fixture()
def toy():
    backend = register_backend(ToyIA3.name, ToyIA3())
    try:
        yield backend
    finally:
        unregister_backend(ToyIA3.name)


# ---- no backend name compared outside the registry -------------------------------------------------------------
def _is_registry(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "BACKENDS") or (
        isinstance(node, ast.Attribute) and node.attr == "BACKENDS")


def _mentions_backend(node: ast.AST, names: set[str]) -> bool:
    """Whether ``node`` holds a backend name (a string constant naming one) or a backend value (``x.backend``,
    ``backend``, ``*_backend``, ``m["backend"]``)."""
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and (n.value in names or n.value == "backend"):
            return True
        ident = n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else None
        if ident is not None and (ident == "backend" or ident.endswith("_backend")):
            return True
    return False


def backend_comparisons(source: str, names: set[str]) -> list[int]:
    """Line numbers of comparisons that involve a backend name or value, except a membership test in the registry
    (``x in BACKENDS``), and of string constants naming a backend (a dispatch table, a default)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            lookup = len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)) and _is_registry(
                node.comparators[0])
            if not lookup and any(_mentions_backend(x, names) for x in [node.left, *node.comparators]):
                found.append(node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
            found.append(node.lineno)
    return sorted(set(found))


@pytest.mark.parametrize("snippet, flagged", [
    ('if cfg.backend == "prefix":\n    pass', True),
    ('if "lora" != meta["backend"]:\n    pass', True),
    ("x = base.backend != cfg.backend", True),
    ('x = backend in ("prefix", "lora")', True),
    ('table = {"prefix": 1, "lora": 2}', True),
    ("x = any(m['backend'] == b for m in metas)", True),
    ("x = self.backend not in BACKENDS", False),
    ("x = memory.BACKENDS[cfg.backend].composable", False),
    ("x = torch.backends.mps is None", False),
    ('x = fmt.prefix(header) == "y"', False),
])
def test_the_backend_comparison_finder_finds_what_it_should(snippet, flagged):
    assert bool(backend_comparisons(snippet, BUILT_IN)) == flagged


def test_no_backend_name_is_compared_outside_the_registry():
    names = BUILT_IN | set(BACKENDS)
    bad = {str(p.relative_to(PKG.parent)): lines for p in sorted(PKG.rglob("*.py")) if p != REGISTRY
           for lines in [backend_comparisons(p.read_text(), names)] if lines}
    assert not bad, f"backend names compared outside stmltm_nb/memory/backends.py (file: lines): {bad}"
    assert backend_comparisons(REGISTRY.read_text(), names)  # the finder sees the registry's own


# ---- the registry (torch-free) ---------------------------------------------------------------------------------
def test_the_registry_holds_prefix_and_lora_and_each_reads_its_own_config_fields():
    from stmltm_nb.memory import config

    assert set(BUILT_IN) <= set(BACKENDS) and DEFAULT_BACKEND in BACKENDS and config.BACKENDS is BACKENDS
    assert ConsolidationConfig().backend == DEFAULT_BACKEND
    known = {f.name for f in fields(ConsolidationConfig)}
    for name, backend in BACKENDS.items():
        assert backend.name == name and backend_named(name) is backend
        assert set(backend.config_fields) <= known, name
    assert set(BACKENDS["prefix"].config_fields) == {"p"} and set(BACKENDS["lora"].config_fields) == {"lora_rank"}
    assert BACKENDS["prefix"].composable and not BACKENDS["lora"].composable
    with pytest.raises(CartridgeError, match="backend must be one of"):
        backend_named("adapter")
    with pytest.raises(TypeError):
        Backend()  # abstract


def test_register_backend_refuses_what_it_cannot_register(toy):
    with pytest.raises(TypeError, match="Backend instance"):
        register_backend("thing", object())
    with pytest.raises(ValueError, match="own name"):
        register_backend("other", ToyIA3())
    with pytest.raises(ValueError, match="registered already"):
        register_backend(ToyIA3.name, ToyIA3())
    assert register_backend(ToyIA3.name, toy, replace=True) is toy


def test_a_registered_backend_is_a_valid_config_and_folder_and_stops_being_one_when_removed(toy, tmp_path):
    cfg = ConsolidationConfig(backend=toy.name)
    assert toy.shape_from_config(cfg) == {} and toy.scaled_fields(cfg, 0.25) == {"p": 32}
    (tmp_path / META_FILE).write_text(json.dumps({"format_version": 1, "backend": toy.name,
                                                  "base_fingerprint": "x", "stats": {}}))
    with pytest.raises(CartridgeError, match="'ia3_targets'"):  # the backend's own field is checked by read_meta
        read_meta(tmp_path)
    (tmp_path / META_FILE).write_text(json.dumps({"format_version": 1, "backend": toy.name, "ia3_targets": "k_proj",
                                                  "base_fingerprint": "x", "stats": {}}))
    assert read_meta(tmp_path)["backend"] == toy.name
    assert toy.shape_from_meta(read_meta(tmp_path)) == {"ia3_targets": "k_proj"}
    unregister_backend(toy.name)
    with pytest.raises(ValueError, match="ConsolidationConfig.backend must be one of"):
        ConsolidationConfig(backend=toy.name)
    with pytest.raises(CartridgeError, match="no valid 'backend'"):
        read_meta(tmp_path)


def test_a_warm_start_needs_the_backend_and_its_size_fields_equal():
    prefix, lora = BACKENDS["prefix"], BACKENDS["lora"]
    prefix.check_warm_start({"backend": "prefix", "p": 8, "num_frozen": 1}, ConsolidationConfig(p=8))
    with pytest.raises(CartridgeError, match="has p = 8 tokens, the config asks for p = 16"):
        prefix.check_warm_start({"backend": "prefix", "p": 8}, ConsolidationConfig(p=16))
    with pytest.raises(CartridgeError, match="is a prefix cartridge, the config asks for lora"):
        prefix.check_warm_start({"backend": "prefix", "p": 8}, ConsolidationConfig(p=8, backend="lora"))
    lora.check_warm_start({"lora_rank": 8}, ConsolidationConfig(backend="lora", p=3))  # p is no LoRA field
    with pytest.raises(CartridgeError, match="has lora_rank = 4, the config asks for lora_rank = 8"):
        lora.check_warm_start({"lora_rank": 4}, ConsolidationConfig(backend="lora"))


# ---- a toy backend, added by this test alone, runs the whole cycle (torch) -------------------------------------
def test_a_toy_backend_consolidates_serves_saves_loads_and_updates(toy, tokenizer, facts, tmp_path):
    import torch

    from stmltm_nb.memory.cartridge import Cartridge
    from stmltm_nb.memory.consolidation import Lesson, RunOptions, consolidate, update
    from stmltm_nb.memory.stm import STMBuffer
    from stmltm_nb.models import tiny_llama

    tiny = tiny_llama(tokenizer, seed=0)  # a fresh model: never wrapped by another test's PEFT model

    cfg = ConsolidationConfig(backend=toy.name, steps=3, update_steps=2, batch_size=2, lr=5e-2, residual_prob=0.0,
                              retention_frac=0.0, practice_frac=0.0, replay_size=2)
    old, new = facts[:3], facts[3:5]
    before = STMBuffer(tiny).query_logits("Q?")
    run = consolidate(tiny, Lesson.of_facts(old), cfg, RunOptions(tmp_path / "tt", progress=False))
    cart = run.cartridge
    assert cart.backend == toy.name and cart.impl is toy and cart.p == 0 and cart.student_context_ids()
    assert not torch.equal(cart.delta_vector(), run.init_vector)  # it trained
    assert torch.equal(STMBuffer(tiny).query_logits("Q?"), before)  # the shared model did not
    assert cart.kv_bytes() == 4 * cart.num_trainable() > 0
    with pytest.raises(CartridgeError, match="no KV prefix"):
        cart.kv_cache()

    folder = cart.save_pretrained(tmp_path / "toy")
    meta = json.loads((folder / META_FILE).read_text())
    assert meta["backend"] == toy.name and not {"p", "num_frozen", "lora_rank"} & set(meta)
    assert meta["ia3_targets"] == "k_proj,v_proj,down_proj"
    loaded = Cartridge.from_pretrained(folder, tiny)
    assert loaded.impl is toy and torch.equal(loaded.delta_vector(), cart.delta_vector())
    assert (loaded.memory().query_logits("Q?") - cart.memory().query_logits("Q?")).abs().max() == 0

    up = update(tiny, folder, Lesson.of_facts(new, replay=old), cfg, RunOptions(tmp_path / "tt", progress=False))
    assert up.cartridge.backend == toy.name and torch.equal(up.init_vector, loaded.delta_vector())
    assert not torch.equal(up.cartridge.delta_vector(), up.init_vector)
    with pytest.raises(CartridgeError, match=f"is a {toy.name} cartridge, the config asks for prefix"):
        update(tiny, cart, Lesson.of_facts(new, replay=old), replace(cfg, backend=DEFAULT_BACKEND),
               RunOptions(progress=False))
