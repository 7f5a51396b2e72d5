"""Where the shipped data lives (``data/``: facts, general text, measured curves, the recorded stream).
Torch-free, so the tuner and the switching side can find the measured curves.

In a checkout the data is the top-level ``data/`` folder; an installed wheel carries a copy of it as package
data, ``stmltm_nb/_data/`` (copied there by ``setup.py`` at build time).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parent / "_data"  # the copy inside an installed wheel
CHECKOUT_DATA = Path(__file__).resolve().parent.parent / "data"  # the folder of a source checkout


class DataNotFoundError(FileNotFoundError):
    """The shipped data folder cannot be found."""


def data_dir() -> Path:
    """The shipped data folder: ``$STMLTM_DATA`` if set, else ``data/`` of this checkout, else the copy
    installed with the package."""
    env = os.environ.get("STMLTM_DATA")
    candidates = [Path(env)] if env else []
    candidates += [CHECKOUT_DATA, PACKAGE_DATA]
    for c in candidates:
        if (c / "facts.jsonl").is_file():
            return c
    raise DataNotFoundError(
        f"shipped data not found (looked in {', '.join(str(c) for c in candidates)}); "
        "reinstall stmltm-nb, clone the repository, or set STMLTM_DATA to its data/ folder"
    )
