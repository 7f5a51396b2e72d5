"""Where the shipped data lives (``data/``: facts, general text, measured curves, the recorded stream).
Torch-free, so the tuner and the switching side can find the measured curves."""

from __future__ import annotations

import os
from pathlib import Path


class DataNotFoundError(FileNotFoundError):
    """The shipped data folder cannot be found."""


def data_dir() -> Path:
    """The shipped data folder: ``$STMLTM_DATA`` if set, else ``data/`` of this checkout."""
    env = os.environ.get("STMLTM_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parent.parent / "data")
    for c in candidates:
        if (c / "facts.jsonl").is_file():
            return c
    raise DataNotFoundError(
        f"shipped data not found (looked in {', '.join(str(c) for c in candidates)}); "
        "clone the repository or set STMLTM_DATA to its data/ folder"
    )
