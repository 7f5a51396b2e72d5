"""LTM: the cartridge φ, a trained KV prefix of p virtual tokens (PEFT ``CartridgeConfig``), or a LoRA.

What differs between the two lives in :mod:`stmltm_nb.memory.backends` (one
:class:`~stmltm_nb.memory.backends.Backend` per kind, looked up by name); this module holds what all share.

Prefix backend: per layer a pair K, V of shape (1, H_kv, p, head_dim), stored post-RoPE at positions 0..p-1;
queries start at position p. The first ``num_frozen`` tokens (default 1, the attention sink) never train.
Initialisation (``init``):

- ``"stm"`` (default): the KV of the STM text itself (prefix header + items), first p tokens. At step 0 the
  cartridge *is* truncated STM.
- ``"text"``: the KV of unrelated text (the shipped general text), the paper's "random text" option.
- ``"random"``: random vectors (ablation; trains badly, as the Cartridges paper reports).

LoRA backend: rank-r adapters on the attention projections of a private copy of the base model (so the
shared model other memories use is never modified); served with the plain header and no items.

Serving: :meth:`Cartridge.memory` returns an :class:`~stmltm_nb.memory.stm.STMBuffer` whose cache starts from the
cartridge, so "LTM only" and "LTM + residual STM" use the same append/answer code as STM.

Saved as a folder: ``adapter_model.safetensors`` + ``adapter_config.json`` (PEFT's own format, so
``peft.compose_cartridge_adapters`` reads it) + ``cartridge.json`` (our metadata: base-model fingerprint, p,
frozen count, backend, format version, training stats, SHA-256 of the weights). Loading never unpickles.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from stmltm_nb.io import atomic_dir, sha256_file
from stmltm_nb.memory.backends import DEFAULT_BACKEND, Backend, backend_named, backend_names
from stmltm_nb.memory.cartridge_files import (
    META_FILE,
    WEIGHTS_FILE,
    CartridgeError,
    CartridgeRecord,
    check_shapes,
    make_publishable,
    read_meta,
)
from stmltm_nb.memory.config import INITS
from stmltm_nb.memory.stm import STMBuffer
from stmltm_nb.models import LoadedModel, model_fingerprint
from stmltm_nb.prompts import CHATML, DEFAULT_HEADER, ChatFormat


def kv_bytes_per_token(config: Any, bytes_per_value: int = 4) -> int:
    """KV-cache bytes one token occupies: 2 (K and V) · layers · KV heads · head_dim · bytes per value."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * bytes_per_value


class Cartridge:
    """A trained memory φ: a KV prefix (PEFT CartridgeConfig) or a LoRA, on top of a frozen base model."""

    def __init__(self, peft_model: Any, lm: LoadedModel, record: CartridgeRecord, fmt: ChatFormat = CHATML,
                 header: str = DEFAULT_HEADER):
        self.peft_model = peft_model
        self.lm = lm  # the frozen base model's handle
        self.impl: Backend = backend_named(record.backend)  # what this kind of cartridge does its own way
        self.record = record  # what it records about itself (cartridge.json); stages replace it, never edit it
        self.fmt = fmt
        self.header = header

    @property
    def base_model(self) -> Any:
        """The frozen base model (the handle's model; read-only)."""
        return self.lm.model

    @property
    def tokenizer(self) -> Any:
        """The base model's tokenizer (read-only)."""
        return self.lm.tokenizer

    @property
    def backend(self) -> str:
        """The registry name of this cartridge's backend (``"prefix"``, ``"lora"``)."""
        return self.record.backend

    @property
    def meta(self) -> dict[str, Any]:
        """``cartridge.json`` as a dict (a copy: change the record with its methods, not this dict)."""
        return self.record.to_json()

    # ----- construction ------------------------------------------------------------------------------
    @classmethod
    def create(cls, lm: LoadedModel, backend: str = DEFAULT_BACKEND, init: str = "stm", stm_text: str | None = None,
               seed: int = 0, **size: Any) -> Cartridge:
        """Build an untrained cartridge of ``backend`` (a key of :data:`~stmltm_nb.memory.backends.BACKENDS`) on the
        base model of ``lm``, framed by the default header and chat format.

        Size arguments (``**size``), each read only by its backend's
        :meth:`~stmltm_nb.memory.backends.Backend.shape`, which gives the defaults: ``p`` virtual tokens (128) and
        ``num_frozen`` of them never trained (1) for the prefix, ``lora_rank`` (8) for LoRA, and any other size field
        a registered backend reads. ``stm_text``: the STM items' text used by ``init="stm"`` (each item on its own
        line, without the header; the header is added here). ``seed`` seeds PEFT's initialisation.
        """
        import torch

        impl = backend_named(backend)
        if init not in INITS:
            raise CartridgeError(f"init must be one of {INITS}, got {init!r}")
        shape = impl.shape(**size)
        record = CartridgeRecord(backend=backend, base_fingerprint=model_fingerprint(lm), init=init, shape=shape,
                                 base_model_type=lm.model.config.model_type)
        torch.manual_seed(seed)
        cart = cls(impl.attach(lm.model, shape), lm, record)
        impl.initialise(cart, init, stm_text)
        return cart

    # ----- shape facts --------------------------------------------------------------------------------
    @property
    def p(self) -> int:
        """Tokens the cartridge serves as context: the prefix's virtual tokens (0 for LoRA)."""
        return self.impl.tokens(self.record.shape)

    @property
    def encoder(self) -> Any:
        """The prompt encoder holding a prefix's virtual tokens (PEFT prompt learning; no LoRA has one)."""
        return self.peft_model.prompt_encoder[self.peft_model.active_adapter]

    def trainable_parameters(self) -> list:
        return [p for p in self.peft_model.parameters() if p.requires_grad]

    def num_trainable(self) -> int:
        """Trainable scalars in φ."""
        return sum(p.numel() for p in self.trainable_parameters())

    def delta_vector(self):
        """All trainable values of φ flattened (a 1-D float tensor, detached)."""
        import torch

        return torch.cat([p.detach().reshape(-1).float() for p in self.trainable_parameters()])

    def kv_bytes(self, bytes_per_value: int = 4) -> int:
        """Serving memory of the prefix (bytes); for LoRA, the adapter weights' bytes."""
        return self.impl.storage_bytes(self, bytes_per_value)

    def student_context_ids(self) -> list[int]:
        """Token ids the student sees before any residual items and the query, exactly as :meth:`memory` serves
        it: nothing for the prefix backend (the cartridge *is* the context), the opened system turn with the
        header for LoRA."""
        return self.impl.context_ids(self)

    # ----- serving --------------------------------------------------------------------------------------
    def kv_cache(self) -> Any:
        """The prefix as a fresh ``DynamicCache`` of p tokens (batch 1), detached from training graphs
        (:class:`CartridgeError` for a backend without a KV prefix)."""
        return self.impl.kv_cache(self)

    def memory(self, residual: list | None = None, **stm_kwargs: Any) -> STMBuffer:
        """An STM buffer served on top of this cartridge ("LTM only", or "LTM + residual STM" with items)."""
        buf = self.impl.serve(self, **stm_kwargs)
        for it in residual or []:
            buf.append(it)
        return buf

    # ----- persistence ----------------------------------------------------------------------------------
    def save_pretrained(self, path: str | os.PathLike, overwrite: bool = False,
                        extra_files: dict[str, str] | None = None) -> Path:
        """Write the cartridge folder atomically (temp folder + rename; removed on any error, Ctrl-C included):
        a PEFT adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``, loadable by plain
        ``peft.PeftModel.from_pretrained``) + ``cartridge.json`` (fingerprint, stats, checksum) + ``extra_files``
        (name → text, e.g. the absorbed STM and a report), all or nothing. Files get the user's umask."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.exists() and not overwrite:
            raise CartridgeError(f"{path} exists; pass overwrite=True to replace it")
        extra = dict(extra_files or {})
        bad = [n for n in extra if Path(n).name != n or n in (WEIGHTS_FILE, META_FILE, "adapter_config.json")]
        if bad:
            raise CartridgeError(f"extra file names must be plain names other than the cartridge's own, got {bad}")
        with atomic_dir(path, overwrite=overwrite) as tmp:
            for name, text in extra.items():
                (tmp / name).write_text(text, encoding="utf-8")
            self.peft_model.peft_config[self.peft_model.active_adapter].save_pretrained(str(tmp))
            tensors = self._state_tensors()
            save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "stmltm_backend": self.backend})
            record = self.record.saved(sha256_file(tmp / WEIGHTS_FILE))
            (tmp / META_FILE).write_text(json.dumps(record.to_json(), indent=2, allow_nan=False, default=str))
            make_publishable(tmp)
        self.record = record
        return path

    def _state_tensors(self) -> dict:
        return self.impl.state_tensors(self)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, lm: LoadedModel) -> Cartridge:
        """Load a saved cartridge onto the base model of ``lm``. Fails with :class:`CartridgeError` if the files are missing,
        corrupt (checksum), or were trained on another base model (fingerprint)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        meta = read_meta(path)
        fp = model_fingerprint(lm)
        if meta.get("base_fingerprint") != fp and meta.get("base_fingerprint") == model_fingerprint(lm, legacy=True):
            meta = dict(meta, base_fingerprint=fp)  # saved before the fingerprint became dtype-independent
        if meta.get("base_fingerprint") != fp:
            raise CartridgeError(
                f"cartridge {path.name} was trained on another base model (fingerprint "
                f"{meta.get('base_fingerprint')} != {fp}); load it onto the model it was trained for"
            )
        wfile = path / WEIGHTS_FILE
        if not wfile.is_file():
            raise CartridgeError(f"{wfile} is missing")
        if meta.get("weights_sha256") and sha256_file(wfile) != meta["weights_sha256"]:
            raise CartridgeError(f"{wfile} is corrupt or truncated (checksum mismatch)")
        try:
            tensors = load_file(str(wfile))
        except (SafetensorError, OSError, ValueError) as e:
            raise CartridgeError(f"cannot read {wfile}: {e}") from e
        cart = cls._shaped_like(meta, lm)
        check_shapes(wfile, tensors, cart._state_tensors(), meta)
        cart._set_state(tensors)
        cart.record = CartridgeRecord.from_json(meta, (f.name for f in cart.impl.meta_fields))
        return cart

    @classmethod
    def _shaped_like(cls, meta: dict[str, Any], lm: LoadedModel) -> Cartridge:
        """An untrained cartridge with the backend and the shape (p and frozen count, or rank) that ``meta``
        records."""
        shape = backend_named(meta["backend"]).shape_from_meta(meta)
        return cls.create(lm, backend=meta["backend"], init="random", **shape)

    def _set_state(self, tensors: dict[str, Any]) -> None:
        self.impl.set_state(self, tensors)

    def clone(self) -> Cartridge:
        """A separate, trainable cartridge holding exactly this φ (the frozen tokens included), on the same base
        model: the warm start of an incremental update. Training the clone leaves this one untouched."""
        twin = type(self)._shaped_like(self.meta, self.lm)
        twin.fmt, twin.header = self.fmt, self.header  # the framing this one is served with
        twin._set_state(self._state_tensors())
        twin.record = self.record  # frozen: the twin's stages replace it, never edit it
        return twin


def compose(paths: list[str | os.PathLike], output: str | os.PathLike, lm: LoadedModel) -> Cartridge:
    """Concatenate saved prefix cartridges along the token axis (no retraining) and load the result.

    Caveat: every cartridge's keys carry RoPE positions 0..p_i-1, so the concatenated prefixes overlap in
    position space (the second cartridge is *not* shifted to p_1..p_1+p_2-1). The Cartridges paper finds this
    works in practice, but the composition is not equal to one cartridge trained on both corpora.

    The composed folder's record: ``init = "composed"``, ``composed_from`` the inputs' folder names, ``items`` the
    union of the inputs' items (in order), empty training stats and no manifest (a composition is not a commit).
    """
    paths = list(paths)
    if len(paths) < 2:
        raise CartridgeError(f"compose needs at least two saved cartridges, got {len(paths)}")
    output = Path(output)
    if output.exists():
        raise CartridgeError(f"{output} exists; compose writes a new folder")
    metas = [read_meta(p) for p in paths]
    kinds = sorted({m["backend"] for m in metas})
    impl = backend_named(kinds[0])
    if len(kinds) > 1 or not impl.composable:
        able = " or ".join(n for n in backend_names() if backend_named(n).composable)
        raise CartridgeError(f"only {able} cartridges can be composed, got {', '.join(kinds)}")
    if len({m["base_fingerprint"] for m in metas}) != 1:
        raise CartridgeError("cartridges to compose were trained on different base models")
    for p, m in zip(paths, metas):
        if m.get("weights_sha256") and sha256_file(Path(p) / WEIGHTS_FILE) != m["weights_sha256"]:
            raise CartridgeError(f"{Path(p) / WEIGHTS_FILE} is corrupt or truncated (checksum mismatch)")
    first = CartridgeRecord.from_json(metas[0], (f.name for f in impl.meta_fields))
    with atomic_dir(output) as tmp:
        shape = {**first.shape, **impl.compose_into([str(p) for p in paths], metas, tmp)}
        record = replace(first, init="composed", shape=shape, stats={}, manifest=None,
                         items=tuple(dict.fromkeys(i for m in metas for i in m.get("items", []))),
                         composed_from=tuple(Path(p).name for p in paths)).saved(sha256_file(tmp / WEIGHTS_FILE))
        (tmp / META_FILE).write_text(json.dumps(record.to_json(), indent=2))
        make_publishable(tmp)
    return Cartridge.from_pretrained(output, lm)
