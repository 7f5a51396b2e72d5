"""stmltm-nb: when should an LLM consolidate short-term memory (context) into a long-term cartridge?

Importing the package loads nothing else (no torch, no plotly); ``notebook_setup`` is imported on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["notebook_setup", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "notebook_setup":  # lazily: the notebooks' one set-up call (stmltm_nb.apps.notebook_setup)
        from stmltm_nb.apps.notebook_setup import notebook_setup

        return notebook_setup
    raise AttributeError(f"module 'stmltm_nb' has no attribute {name!r}")
