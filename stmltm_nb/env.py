"""Run-time switches shared by notebooks, the CLI and tests."""

from __future__ import annotations

import os
import platform
import random


def fast() -> bool:
    """True when ``STMLTM_FAST`` is set to a true value: notebooks and commands shrink their work (CI)."""
    return os.environ.get("STMLTM_FAST", "").strip().lower() in ("1", "true", "yes", "on")


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

