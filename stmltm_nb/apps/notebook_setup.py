"""The shared set-up of every notebook (after the inline Colab install): one call, ``FAST = notebook_setup()``."""

from __future__ import annotations


def notebook_setup(seed: int = 0) -> bool:
    """Seed Python, numpy and torch (if installed) with ``seed``, render plotly figures for JupyterLab, the
    classic notebook, Colab and Voilà, print the fast mode and return it (``STMLTM_FAST=1`` shrinks the work)."""
    from stmltm_nb.apps.viz import setup_plotly
    from stmltm_nb.env import fast, seed_everything, silence_foreign_deprecations

    silence_foreign_deprecations()
    is_fast = fast()
    seed_everything(seed)
    setup_plotly()
    print("fast mode:", is_fast)
    return is_fast


__all__ = ["notebook_setup"]
