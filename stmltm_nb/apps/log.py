"""Progress lines and JSON-safe structures for the long jobs (``stmltm measure``, ``stmltm demo``)."""

from __future__ import annotations

import math
import time
from typing import Any


def log(msg: str) -> None:
    """Print ``msg`` with a wall-clock time stamp (HH:MM:SS), flushed at once."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def json_clean(x: Any) -> Any:
    """Make a structure JSON-safe: NaN/inf become None; numpy scalars become Python numbers; tuples become
    lists; dict keys become strings."""
    if isinstance(x, dict):
        return {str(k): json_clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        try:
            x = x.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


__all__ = ["log", "json_clean"]
