"""Memory backends: how a cartridge φ is shaped, attached to the base model, served, saved and checked.

A backend is one way of storing what a consolidation learned. As in PEFT (one config class per method), each
backend owns what only it needs: the :class:`~stmltm_nb.memory.config.ConsolidationConfig` fields it reads, its
PEFT config, the fields it writes to and checks in ``cartridge.json``, its compatibility check for a warm start,
its size (serving tokens, storage bytes) and how it is served. Two are registered in :data:`BACKENDS`:

- ``"prefix"`` (:class:`PrefixBackend`): a trained KV prefix of ``p`` virtual tokens (PEFT ``CartridgeConfig``)
  on the shared base model, per layer a pair K, V of shape (1, H_kv, p, head_dim) stored post-RoPE at positions
  0..p-1 (queries start at position p); the first ``num_frozen`` tokens (the attention sink) never train.
- ``"lora"`` (:class:`LoRABackend`): rank-``lora_rank`` adapters on the attention projections of a private copy
  of the base model (the shared model other memories use is never modified), served with the plain header.

The rest of the package looks a backend up by its name (``BACKENDS[cfg.backend]``, :func:`backend_named`, or a
cartridge's :attr:`~stmltm_nb.memory.cartridge.Cartridge.impl`) and never compares backend names. To add one:
subclass :class:`Backend` (or :class:`AdapterBackend` for a PEFT weight adapter on a private model copy) and pass
an instance to :func:`register_backend`; ``tests/test_backends.py`` registers a toy (IA)³ backend that way.

Torch-free at import: torch, transformers and peft are imported by the methods that need them.
"""

from __future__ import annotations

import copy
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from stmltm_nb.memory.cartridge_files import CartridgeError
from stmltm_nb.memory.stm import STMBuffer
from stmltm_nb.prompts import encode

if TYPE_CHECKING:
    from stmltm_nb.memory.cartridge import Cartridge
    from stmltm_nb.memory.config import ConsolidationConfig

DEFAULT_BACKEND = "prefix"  # the default of ConsolidationConfig.backend and Cartridge.create


class MetaField(NamedTuple):
    """A backend field of ``cartridge.json``: its name, JSON type, lower bound (``None``: none) and whether a folder
    must have it (an optional field is checked only when present)."""

    name: str
    kind: type
    lo: int | None = None
    required: bool = True


def quiet_get_peft_model(model: Any, cfg: Any) -> Any:
    """``peft.get_peft_model`` without transformers' deprecation warning about gradient checkpointing (PEFT asks
    the model whether it is on; the warning carries a file path and is noise in notebooks)."""
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, cfg)


class Backend(ABC):
    """What one kind of cartridge needs beyond the code every cartridge shares (training, saving, loading).

    Class attributes: ``name`` the registry key (written as ``cartridge.json`` ``"backend"``); ``label`` how
    messages name it; ``config_fields`` the ConsolidationConfig fields that shape φ, each with its unit (recorded
    under the same name in ``cartridge.json``; a warm start needs them equal); ``meta_fields`` the backend's
    ``cartridge.json`` fields with their checks (read back into :meth:`shape` when a folder is loaded).
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    config_fields: ClassVar[dict[str, str]] = {}
    meta_fields: ClassVar[tuple[MetaField, ...]] = ()

    # ----- config side (torch-free) ------------------------------------------------------------------------------
    def check_config(self, cfg: ConsolidationConfig) -> None:
        """Raise a ``ValueError`` naming the ``ConsolidationConfig`` field this backend cannot train with."""
        return None  # default: nothing more to check or set

    def shape_from_config(self, cfg: ConsolidationConfig) -> dict[str, Any]:
        """The size arguments of :meth:`shape` (and ``Cartridge.create``) that ``cfg`` asks for."""
        return {name: getattr(cfg, name) for name in self.config_fields}

    def scaled_fields(self, cfg: ConsolidationConfig, ratio: float) -> dict[str, Any]:
        """Config fields of a run on ``ratio`` (0 < ratio ≤ 1) of the items with the same size per item (the recall
        probe's replica design). Default: ``p`` scaled, at least 1 token (a backend that does not read ``p`` keeps
        the field valid; the probe records it)."""
        return {"p": max(1, round(cfg.p * ratio))}

    def check_warm_start(self, meta: Mapping[str, Any], cfg: ConsolidationConfig) -> None:
        """Raise :class:`CartridgeError` unless a cartridge of this backend with ``meta`` can be trained further with
        ``cfg`` (same backend, every :attr:`config_fields` value equal). The base model is checked by the caller."""
        if cfg.backend != self.name:
            raise CartridgeError(f"cannot warm-start: the committed cartridge is a {self.name} cartridge, the config "
                                 f"asks for {cfg.backend}")
        for name, unit in self.config_fields.items():
            have, want = meta.get(name), getattr(cfg, name)
            if have != want:
                raise CartridgeError(f"cannot warm-start: the committed cartridge has {name} = {have}"
                                     f"{' ' + unit if unit else ''}, the config asks for {name} = {want}")

    # ----- shape and construction ------------------------------------------------------------------------------
    @abstractmethod
    def shape(self, **size: Any) -> dict[str, Any]:
        """Check the size arguments this backend reads (others are ignored; :class:`CartridgeError` names a bad
        one) and return the ``cartridge.json`` fields that record the shape."""

    def shape_from_meta(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        """The size arguments of :meth:`shape` that rebuild a cartridge shaped like ``meta`` (a checked folder)."""
        return {f.name: meta[f.name] for f in self.meta_fields}

    @abstractmethod
    def attach(self, model: Any, shape: Mapping[str, Any]) -> Any:
        """The PEFT model holding an untrained φ of ``shape`` on ``model`` (seeded by the caller)."""

    def initialise(self, cart: Cartridge, init: str, stm_text: str | None) -> None:
        """Set the untrained φ from ``init`` (:data:`~stmltm_nb.memory.config.INITS`). Default: nothing (PEFT's own
        initialisation)."""
        return None  # default: nothing more to check or set

    # ----- size -----------------------------------------------------------------------------------------------------
    def tokens(self, meta: Mapping[str, Any]) -> int:
        """Tokens the cartridge serves as context before any item (0: none)."""
        return 0

    @abstractmethod
    def storage_bytes(self, cart: Cartridge, bytes_per_value: int = 4) -> int:
        """Serving memory of φ in bytes at ``bytes_per_value`` bytes per stored value."""

    # ----- serving and training -------------------------------------------------------------------------------------
    @abstractmethod
    def context_ids(self, cart: Cartridge) -> list[int]:
        """Token ids the student sees before any residual items and the query, exactly as :meth:`serve` serves."""

    @abstractmethod
    def serve(self, cart: Cartridge, **stm_kwargs: Any) -> STMBuffer:
        """An empty STM buffer served on top of ``cart``."""

    def kv_cache(self, cart: Cartridge) -> Any:
        """φ as a ``DynamicCache`` (batch 1); only a KV-prefix backend has one."""
        raise CartridgeError(f"a {self.label or self.name} cartridge has no KV prefix")

    # ----- the folder -------------------------------------------------------------------------------------------
    @abstractmethod
    def state_tensors(self, cart: Cartridge) -> dict[str, Any]:
        """φ as named tensors (detached copies): what ``adapter_model.safetensors`` holds."""

    @abstractmethod
    def set_state(self, cart: Cartridge, tensors: Mapping[str, Any]) -> None:
        """Load :meth:`state_tensors` output into ``cart`` (shapes checked by the caller)."""

    def check_meta(self, meta: Mapping[str, Any], mfile: Path) -> None:
        """Checks across this backend's :attr:`meta_fields` (each already has its type and bound)."""
        return None  # default: nothing more to check or set

    def shape_field(self, tensor_name: str) -> str:
        """The ``cartridge.json`` field a saved tensor's shape follows (named when a shape does not match)."""
        return next(iter(self.config_fields), "backend")

    @property
    def composable(self) -> bool:
        """Whether saved cartridges of this backend concatenate (:meth:`compose_into`)."""
        return False

    def compose_into(self, paths: list[str], metas: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
        """Write the adapter files of ``paths`` concatenated into ``folder``; return the result's shape fields."""
        raise CartridgeError(f"{self.label or self.name} cartridges cannot be composed")


class PrefixBackend(Backend):
    """A trained KV prefix of ``p`` virtual tokens (PEFT ``CartridgeConfig``) on the shared base model."""

    name = "prefix"
    label = "prefix"
    config_fields = {"p": "tokens"}
    meta_fields = (MetaField("p", int, 2), MetaField("num_frozen", int, 0))

    def check_config(self, cfg: ConsolidationConfig) -> None:
        if cfg.p < 2:
            raise ValueError(f"ConsolidationConfig.p must be >= 2 for the prefix backend (one frozen attention-sink "
                             f"token + trainable ones), got {cfg.p!r}")

    def scaled_fields(self, cfg: ConsolidationConfig, ratio: float) -> dict[str, Any]:
        return {"p": max(2, round(cfg.p * ratio))}

    def shape(self, *, p: int = 128, num_frozen: int = 1, **_: Any) -> dict[str, Any]:
        """``p`` virtual tokens (≥ 2), the first ``num_frozen`` (0 ≤ num_frozen < p) never trained."""
        if not isinstance(p, int) or p < 2:
            raise CartridgeError(f"p must be an integer >= 2, got {p!r}")
        if not isinstance(num_frozen, int) or not 0 <= num_frozen < p:
            raise CartridgeError(f"num_frozen must be an integer in [0, p), got {num_frozen!r}")
        return {"p": p, "num_frozen": num_frozen}

    def attach(self, model: Any, shape: Mapping[str, Any]) -> Any:
        from peft import CartridgeConfig

        cfg = CartridgeConfig(task_type="CAUSAL_LM", num_virtual_tokens=shape["p"],
                              num_frozen_tokens=shape["num_frozen"])
        return quiet_get_peft_model(model, cfg)

    def initialise(self, cart: Cartridge, init: str, stm_text: str | None) -> None:
        """``"stm"``: the KV of the STM text itself (header + items), first p tokens; ``"text"``: the KV of the
        shipped general text; ``"random"``: PEFT's random vectors. Text shorter than p tokens is repeated."""
        if init == "random":
            return
        if init == "stm":
            if not stm_text or not stm_text.strip():
                raise CartridgeError("init='stm' needs the STM text (stm_text)")
            text = cart.fmt.prefix(cart.header) + stm_text
        else:
            from stmltm_nb.memory.facts import general_text

            text = cart.fmt.prefix(cart.header) + general_text()
        ids = encode(cart.tokenizer, text)
        while len(ids) < cart.p:  # too short: repeat the body until p tokens exist
            ids = ids + encode(cart.tokenizer, stm_text or text)
        self._init_from_ids(cart, ids[: cart.p])

    @staticmethod
    def _init_from_ids(cart: Cartridge, ids: list[int]) -> None:
        import torch
        from peft.tuners.cartridge.utils import initialize_kv_prefix_from_past_key_values

        with torch.no_grad():
            out = cart.base_model(input_ids=torch.tensor([ids], device=cart.base_model.device), use_cache=True)
        initialize_kv_prefix_from_past_key_values(cart.peft_model, past_key_values=out.past_key_values)

    def tokens(self, meta: Mapping[str, Any]) -> int:
        return int(meta["p"])

    def storage_bytes(self, cart: Cartridge, bytes_per_value: int = 4) -> int:
        """p tokens of KV cache (:func:`~stmltm_nb.memory.cartridge.kv_bytes_per_token`)."""
        from stmltm_nb.memory.cartridge import kv_bytes_per_token  # cartridge imports this module

        return cart.p * kv_bytes_per_token(cart.base_model.config, bytes_per_value)

    def context_ids(self, cart: Cartridge) -> list[int]:
        return []  # the cartridge *is* the context

    def serve(self, cart: Cartridge, **stm_kwargs: Any) -> STMBuffer:
        return STMBuffer(cart.lm, fmt=cart.fmt, prefix_cache=self.kv_cache(cart), **stm_kwargs)

    def kv_cache(self, cart: Cartridge) -> Any:
        """The prefix as a fresh ``DynamicCache`` of p tokens (batch 1), detached from training graphs."""
        from transformers import DynamicCache

        cfg = cart.peft_model.active_peft_config
        w = cart.encoder.weight.detach()
        n_layers, heads = cfg.num_layers, cfg.num_attention_heads
        w = w.view(cart.p, 2 * n_layers, heads, cfg.token_dim // heads)
        layers = [(w[:, 2 * i].transpose(0, 1).unsqueeze(0).contiguous(),
                   w[:, 2 * i + 1].transpose(0, 1).unsqueeze(0).contiguous()) for i in range(n_layers)]
        return DynamicCache(ddp_cache_data=layers)

    def state_tensors(self, cart: Cartridge) -> dict[str, Any]:
        return {"prompt_embeddings": cart.encoder.weight.detach().contiguous().clone()}

    def set_state(self, cart: Cartridge, tensors: Mapping[str, Any]) -> None:
        cart.encoder.load_prompt_embeddings(tensors["prompt_embeddings"])

    def check_meta(self, meta: Mapping[str, Any], mfile: Path) -> None:
        if meta["num_frozen"] >= meta["p"]:
            raise CartridgeError(f"{mfile}: field 'num_frozen' must be < p = {meta['p']}, got {meta['num_frozen']}")

    @property
    def composable(self) -> bool:
        return True

    def compose_into(self, paths: list[str], metas: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
        """PEFT's ``compose_cartridge_adapters``: the prefixes concatenated along the token axis (p adds up)."""
        from peft import compose_cartridge_adapters

        compose_cartridge_adapters(paths, output_path=str(folder))
        return {"p": sum(m["p"] for m in metas)}


class AdapterBackend(Backend):
    """A PEFT weight adapter (its config from :meth:`peft_config`) on a private copy of the base model, so the
    shared model is never modified; served through the PEFT model with the plain header and no items. Storage:
    the trainable values. Subclasses give :meth:`peft_config` and :meth:`shape`."""

    @abstractmethod
    def peft_config(self, shape: Mapping[str, Any]) -> Any:
        """The PEFT config of an adapter of ``shape``."""

    def attach(self, model: Any, shape: Mapping[str, Any]) -> Any:
        return quiet_get_peft_model(copy.deepcopy(model), self.peft_config(shape))

    def storage_bytes(self, cart: Cartridge, bytes_per_value: int = 4) -> int:
        """The adapter weights: trainable values × ``bytes_per_value``."""
        return cart.num_trainable() * bytes_per_value

    def context_ids(self, cart: Cartridge) -> list[int]:
        return encode(cart.tokenizer, cart.fmt.prefix(cart.header))

    def serve(self, cart: Cartridge, **stm_kwargs: Any) -> STMBuffer:
        return STMBuffer(dataclasses.replace(cart.lm, model=cart.peft_model), header=cart.header, fmt=cart.fmt,
                         **stm_kwargs)

    def state_tensors(self, cart: Cartridge) -> dict[str, Any]:
        from peft import get_peft_model_state_dict

        return {k: v.detach().contiguous().clone() for k, v in get_peft_model_state_dict(cart.peft_model).items()}

    def set_state(self, cart: Cartridge, tensors: Mapping[str, Any]) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(cart.peft_model, dict(tensors))


class LoRABackend(AdapterBackend):
    """Rank-``lora_rank`` LoRA (alpha = 2 · rank, no dropout) on q, k, v and o of every attention layer."""

    name = "lora"
    label = "LoRA"
    config_fields = {"lora_rank": ""}
    # p = 0 and num_frozen = 0 are written (and required) as in every format-1 folder, so older readers load it
    meta_fields = (MetaField("p", int, 0), MetaField("num_frozen", int, 0), MetaField("lora_rank", int, 1))

    def shape(self, *, lora_rank: int = 8, **_: Any) -> dict[str, Any]:
        """``lora_rank`` ≥ 1."""
        if not isinstance(lora_rank, int) or lora_rank < 1:
            raise CartridgeError(f"lora_rank must be a positive integer, got {lora_rank!r}")
        return {"lora_rank": lora_rank, "p": 0, "num_frozen": 0}

    def peft_config(self, shape: Mapping[str, Any]) -> Any:
        from peft import LoraConfig

        r = shape["lora_rank"]
        return LoraConfig(task_type="CAUSAL_LM", r=r, lora_alpha=2 * r, lora_dropout=0.0,
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


# ----- the registry ---------------------------------------------------------------------------------------------------
BACKENDS: dict[str, Backend] = {}


def register_backend(name: str, backend: Backend, replace: bool = False) -> Backend:
    """Make ``backend`` available under ``name`` (its ``name`` attribute) to ``ConsolidationConfig.backend``,
    ``Cartridge.create`` and saved folders. A taken name raises a ``ValueError`` unless ``replace``."""
    if not isinstance(backend, Backend):
        raise TypeError(f"a backend must be a Backend instance, got {type(backend).__name__}")
    if not name or name != backend.name:
        raise ValueError(f"register a backend under its own name ({backend.name!r}), got {name!r}")
    if name in BACKENDS and not replace:
        raise ValueError(f"a backend named {name!r} is registered already")
    BACKENDS[name] = backend
    return backend


def unregister_backend(name: str) -> None:
    """Remove the backend registered under ``name`` (tests registering a toy one clean up with this)."""
    BACKENDS.pop(name, None)


def backend_names() -> tuple[str, ...]:
    """The registered backend names, in registration order."""
    return tuple(BACKENDS)


def backend_named(name: Any) -> Backend:
    """The backend registered under ``name``; :class:`CartridgeError` (a ``ValueError``) names the choices."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise CartridgeError(f"backend must be one of {backend_names()}, got {name!r}")
    return BACKENDS[name]


register_backend("prefix", PrefixBackend())
register_backend("lora", LoRABackend())
