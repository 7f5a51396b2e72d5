"""LTM: the cartridge φ, a trained KV prefix of p virtual tokens (PEFT ``CartridgeConfig``), or a LoRA.

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

import copy
import json
import os
from pathlib import Path
from typing import Any

from stmltm_nb.io import atomic_dir, sha256_file
from stmltm_nb.memory.cartridge_files import (  # noqa: F401 - re-exported: the folder format
    FORMAT_VERSION,
    META_FILE,
    WEIGHTS_FILE,
    CartridgeError,
    _check_shapes,
    _publishable,
    read_meta,
)
from stmltm_nb.memory.config import BACKENDS, INITS  # noqa: F401 - re-exported
from stmltm_nb.memory.stm import STMBuffer
from stmltm_nb.models import model_fingerprint
from stmltm_nb.prompts import CHATML, DEFAULT_HEADER, ChatFormat, encode


def kv_bytes_per_token(config: Any, bytes_per_value: int = 4) -> int:
    """KV-cache bytes one token occupies: 2 (K and V) · layers · KV heads · head_dim · bytes per value."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * bytes_per_value


def _quiet_get_peft_model(model: Any, cfg: Any) -> Any:
    """``peft.get_peft_model`` without transformers' deprecation warning about gradient checkpointing (PEFT asks
    the model whether it is on; the warning carries a file path and is noise in notebooks)."""
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, cfg)


class Cartridge:
    """A trained memory φ: a KV prefix (PEFT CartridgeConfig) or a LoRA, on top of a frozen base model."""

    def __init__(self, peft_model: Any, base_model: Any, tokenizer: Any, backend: str, meta: dict[str, Any],
                 fmt: ChatFormat = CHATML, header: str = DEFAULT_HEADER):
        self.peft_model = peft_model
        self.base_model = base_model
        self.tokenizer = tokenizer
        self.backend = backend
        self.meta = meta
        self.fmt = fmt
        self.header = header

    # ----- construction ------------------------------------------------------------------------------
    @classmethod
    def create(cls, model: Any, tokenizer: Any, p: int = 128, backend: str = "prefix", init: str = "stm",
               stm_text: str | None = None, num_frozen: int = 1, lora_rank: int = 8, seed: int = 0,
               header: str = DEFAULT_HEADER, fmt: ChatFormat = CHATML) -> Cartridge:
        """Build an untrained cartridge.

        ``p``: virtual tokens (prefix backend). ``stm_text``: the STM items' text used by ``init="stm"``
        (each item on its own line, without the header; the header is added here).
        """
        import torch
        from peft import CartridgeConfig, LoraConfig

        if backend not in BACKENDS:
            raise CartridgeError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if init not in INITS:
            raise CartridgeError(f"init must be one of {INITS}, got {init!r}")
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION, "backend": backend, "init": init,
            "base_fingerprint": model_fingerprint(model, tokenizer),
            "base_model_type": model.config.model_type, "stats": {},
        }
        torch.manual_seed(seed)
        if backend == "lora":
            if not isinstance(lora_rank, int) or lora_rank < 1:
                raise CartridgeError(f"lora_rank must be a positive integer, got {lora_rank!r}")
            private = copy.deepcopy(model)
            cfg = LoraConfig(task_type="CAUSAL_LM", r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.0,
                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
            peft_model = _quiet_get_peft_model(private, cfg)
            meta.update({"lora_rank": lora_rank, "p": 0, "num_frozen": 0})
            return cls(peft_model, model, tokenizer, backend, meta, fmt, header)

        if not isinstance(p, int) or p < 2:
            raise CartridgeError(f"p must be an integer >= 2, got {p!r}")
        if not isinstance(num_frozen, int) or not 0 <= num_frozen < p:
            raise CartridgeError(f"num_frozen must be an integer in [0, p), got {num_frozen!r}")
        cfg = CartridgeConfig(task_type="CAUSAL_LM", num_virtual_tokens=p, num_frozen_tokens=num_frozen)
        peft_model = _quiet_get_peft_model(model, cfg)
        meta.update({"p": p, "num_frozen": num_frozen})
        cart = cls(peft_model, model, tokenizer, backend, meta, fmt, header)
        if init == "random":
            return cart
        if init == "stm":
            if not stm_text or not stm_text.strip():
                raise CartridgeError("init='stm' needs the STM text (stm_text)")
            text = fmt.prefix(header) + stm_text
        else:
            from stmltm_nb.memory.facts import general_text

            text = fmt.prefix(header) + general_text()
        ids = encode(tokenizer, text)
        while len(ids) < p:  # too short: repeat the body until p tokens exist
            ids = ids + encode(tokenizer, stm_text or text)
        cart._init_from_ids(ids[:p])
        return cart

    def _init_from_ids(self, ids: list[int]) -> None:
        import torch
        from peft.tuners.cartridge.utils import initialize_kv_prefix_from_past_key_values

        with torch.no_grad():
            out = self.base_model(input_ids=torch.tensor([ids], device=self.base_model.device), use_cache=True)
        initialize_kv_prefix_from_past_key_values(self.peft_model, past_key_values=out.past_key_values)

    # ----- shape facts --------------------------------------------------------------------------------
    @property
    def p(self) -> int:
        """Virtual tokens of the prefix (0 for LoRA)."""
        return int(self.meta["p"])

    @property
    def encoder(self) -> Any:
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
        if self.backend == "prefix":
            return self.p * kv_bytes_per_token(self.base_model.config, bytes_per_value)
        return self.num_trainable() * bytes_per_value

    def student_context_ids(self) -> list[int]:
        """Token ids the student sees before any residual items and the query, exactly as :meth:`memory` serves
        it: nothing for the prefix backend (the cartridge *is* the context), the opened system turn with the
        header for LoRA."""
        if self.backend == "prefix":
            return []
        return encode(self.tokenizer, self.fmt.prefix(self.header))

    # ----- serving --------------------------------------------------------------------------------------
    def kv_cache(self):
        """The prefix as a fresh ``DynamicCache`` of p tokens (batch 1), detached from training graphs."""
        from transformers import DynamicCache

        if self.backend != "prefix":
            raise CartridgeError("a LoRA cartridge has no KV prefix")
        cfg = self.peft_model.active_peft_config
        w = self.encoder.weight.detach()
        n_layers, heads = cfg.num_layers, cfg.num_attention_heads
        w = w.view(self.p, 2 * n_layers, heads, cfg.token_dim // heads)
        layers = [(w[:, 2 * i].transpose(0, 1).unsqueeze(0).contiguous(),
                   w[:, 2 * i + 1].transpose(0, 1).unsqueeze(0).contiguous()) for i in range(n_layers)]
        return DynamicCache(ddp_cache_data=layers)

    def memory(self, residual: list | None = None, **stm_kwargs: Any) -> STMBuffer:
        """An STM buffer served on top of this cartridge ("LTM only", or "LTM + residual STM" with items)."""
        if self.backend == "prefix":
            buf = STMBuffer(self.base_model, self.tokenizer, fmt=self.fmt, prefix_cache=self.kv_cache(), **stm_kwargs)
        else:
            buf = STMBuffer(self.peft_model, self.tokenizer, header=self.header, fmt=self.fmt, **stm_kwargs)
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
            meta = dict(self.meta, weights_sha256=sha256_file(tmp / WEIGHTS_FILE))
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False, default=str))
            _publishable(tmp)
        self.meta = meta
        return path

    save = save_pretrained  # the original name, kept as an alias

    def _state_tensors(self) -> dict:
        if self.backend == "prefix":
            return {"prompt_embeddings": self.encoder.weight.detach().contiguous().clone()}
        from peft import get_peft_model_state_dict

        return {k: v.detach().contiguous().clone() for k, v in get_peft_model_state_dict(self.peft_model).items()}

    @classmethod
    def load(cls, path: str | os.PathLike, model: Any, tokenizer: Any, header: str = DEFAULT_HEADER,
             fmt: ChatFormat = CHATML) -> Cartridge:
        """Load a saved cartridge onto ``model``. Fails with :class:`CartridgeError` if the files are missing,
        corrupt (checksum), or were trained on another base model (fingerprint)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        meta = read_meta(path)
        fp = model_fingerprint(model, tokenizer)
        if meta.get("base_fingerprint") != fp and meta.get("base_fingerprint") == model_fingerprint(
                model, tokenizer, legacy=True):
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
        cart = cls._shaped_like(meta, model, tokenizer, header, fmt)
        _check_shapes(wfile, tensors, cart._state_tensors(), meta)
        cart._set_state(tensors)
        cart.meta = meta
        return cart

    @classmethod
    def _shaped_like(cls, meta: dict[str, Any], model: Any, tokenizer: Any, header: str = DEFAULT_HEADER,
                     fmt: ChatFormat = CHATML) -> Cartridge:
        """An untrained cartridge with the backend, p, frozen count and rank that ``meta`` records."""
        backend = meta["backend"]
        return cls.create(model, tokenizer, p=meta["p"] if backend == "prefix" else 2, backend=backend, init="random",
                          num_frozen=meta["num_frozen"] if backend == "prefix" else 1,
                          lora_rank=meta.get("lora_rank", 8), header=header, fmt=fmt)

    def _set_state(self, tensors: dict[str, Any]) -> None:
        if self.backend == "prefix":
            self.encoder.load_prompt_embeddings(tensors["prompt_embeddings"])
        else:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(self.peft_model, tensors)

    def clone(self) -> Cartridge:
        """A separate, trainable cartridge holding exactly this φ (the frozen tokens included), on the same base
        model: the warm start of an incremental update. Training the clone leaves this one untouched."""
        twin = type(self)._shaped_like(self.meta, self.base_model, self.tokenizer, self.header, self.fmt)
        twin._set_state(self._state_tensors())
        twin.meta = copy.deepcopy(self.meta)
        return twin

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, model: Any, tokenizer: Any, **kwargs: Any) -> Cartridge:
        """:meth:`load` under the Hugging Face name."""
        return cls.load(path, model, tokenizer, **kwargs)


def compose(paths: list[str | os.PathLike], output: str | os.PathLike, model: Any, tokenizer: Any) -> Cartridge:
    """Concatenate saved prefix cartridges along the token axis (no retraining) and load the result.

    Caveat: every cartridge's keys carry RoPE positions 0..p_i-1, so the concatenated prefixes overlap in
    position space (the second cartridge is *not* shifted to p_1..p_1+p_2-1). The Cartridges paper finds this
    works in practice, but the composition is not equal to one cartridge trained on both corpora.
    """
    from peft import compose_cartridge_adapters

    paths = list(paths)
    if len(paths) < 2:
        raise CartridgeError(f"compose needs at least two saved cartridges, got {len(paths)}")
    output = Path(output)
    if output.exists():
        raise CartridgeError(f"{output} exists; compose writes a new folder")
    metas = [read_meta(p) for p in paths]
    if any(m["backend"] != "prefix" for m in metas):
        raise CartridgeError("only prefix cartridges can be composed")
    if len({m["base_fingerprint"] for m in metas}) != 1:
        raise CartridgeError("cartridges to compose were trained on different base models")
    for p, m in zip(paths, metas):
        if m.get("weights_sha256") and sha256_file(Path(p) / WEIGHTS_FILE) != m["weights_sha256"]:
            raise CartridgeError(f"{Path(p) / WEIGHTS_FILE} is corrupt or truncated (checksum mismatch)")
    meta = dict(metas[0], p=sum(m["p"] for m in metas), init="composed", stats={},
                composed_from=[str(Path(p).name) for p in paths])
    with atomic_dir(output) as tmp:
        compose_cartridge_adapters([str(p) for p in paths], output_path=str(tmp))
        meta["weights_sha256"] = sha256_file(tmp / WEIGHTS_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        _publishable(tmp)
    return Cartridge.load(output, model, tokenizer)
