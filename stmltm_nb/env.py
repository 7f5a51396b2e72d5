"""Run-time switches shared by notebooks, the CLI and tests."""

from __future__ import annotations

import os
import platform
import random


def fast() -> bool:
    """True when ``STMLTM_FAST`` is set to a true value: notebooks and commands shrink their work (CI)."""
    return os.environ.get("STMLTM_FAST", "").strip().lower() in ("1", "true", "yes", "on")


def static_figures() -> bool:
    """True when ``STMLTM_STATIC_FIGURES`` is set to a true value: every plotly figure a notebook shows is also
    saved as a PNG output beside it (the notebook build sets it; needs ``kaleido`` and a Chromium)."""
    return os.environ.get("STMLTM_STATIC_FIGURES", "").strip().lower() in ("1", "true", "yes", "on")


def seed_everything(seed: int = 0) -> None:
    """Seed Python, numpy and (if installed) torch."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


def machine() -> dict[str, str | int]:
    """What the measurements ran on (no paths)."""
    info: dict[str, str | int] = {"python": platform.python_version(), "cpus": os.cpu_count() or 0,
                                  "platform": platform.machine()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kw) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool = True):
    """A tqdm bar over ``total`` steps (a no-op object with the same methods when ``enabled`` is false)."""
    if not enabled:
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc)


DEVICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(ValueError):
    """A device that is not known, or not present on this machine."""


def available_devices() -> dict[str, bool]:
    """Which accelerators torch can use here: ``{"cuda": bool, "mps": bool}`` (both false without torch)."""
    try:
        import torch
    except ImportError:
        return {"cuda": False, "mps": False}
    mps = getattr(torch.backends, "mps", None)
    return {"cuda": bool(torch.cuda.is_available()), "mps": bool(mps is not None and mps.is_available())}


def pick_device(name: str = "auto", available: dict[str, bool] | None = None) -> str:
    """Resolve a device name: ``"auto"`` picks CUDA, then MPS, else CPU; ``"cuda"``, ``"cuda:1"`` or ``"mps"``
    must be present (:class:`DeviceError` says so and suggests ``--device cpu``). ``available`` overrides the
    detection (tests)."""
    if not isinstance(name, str) or name.split(":")[0] not in DEVICES or (":" in name and not name.startswith("cuda:")):
        raise DeviceError(f"unknown device {name!r}: use one of {', '.join(DEVICES)} (or cuda:N)")
    have = available if available is not None else available_devices()
    if name == "auto":
        return "cuda" if have.get("cuda") else "mps" if have.get("mps") else "cpu"
    kind = name.split(":")[0]
    if kind != "cpu" and not have.get(kind):
        raise DeviceError(f"--device {name}: no {kind.upper()} device is available on this machine; "
                          "use --device auto or --device cpu")
    return name


def default_dtype(device: str, bf16_ok: bool | None = None) -> str:
    """The weights' dtype for a device: ``"bfloat16"`` on a CUDA GPU that supports it (halves memory, same
    exponent range as float32, so distillation losses stay finite), else ``"float32"`` (CPU, MPS, older GPUs:
    float16 would need loss scaling). ``bf16_ok`` overrides the detection (tests)."""
    if not device.startswith("cuda"):
        return "float32"
    if bf16_ok is None:
        import torch

        bf16_ok = bool(torch.cuda.is_bf16_supported())
    return "bfloat16" if bf16_ok else "float32"


def silence_foreign_deprecations() -> None:
    """Hide transformers' ``past_key_values`` deprecation that PEFT's prefix models trigger inside their own
    forward (the package itself passes ``cache=``); every other warning stays visible. Idempotent."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=r".*`past_key_values` is deprecated", category=FutureWarning)
    for name in ("transformers", "transformers.modeling_utils", "transformers.utils.generic"):
        logging.getLogger(name).addFilter(_no_past_key_values)  # the same filter twice is added once


def _no_past_key_values(record) -> bool:
    return "past_key_values" not in record.getMessage()

