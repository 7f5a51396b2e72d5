"""The controller's commit record as a typed value: which cartridge version serves, each version's parent, which
item ids each version absorbed, the measured values the rule uses, the backoff threshold and the history.

:meth:`ControllerState.commit`, :meth:`ControllerState.rollback` and :meth:`ControllerState.reject_candidate`
are its only mutators; each returns a new state (the old one stays valid until the new one is written).
JSON form (``state.json``)::

    {"version": int, "parents": {"v": parent}, "absorbed": {item_id: version}, "history": [record, ...],
     "measured": {"c_upd_s": s, "q_cart": recall, "r_cart_s": s/query}, "retry_at_n": items}

Older files have no ``parents`` (derived from the history's commit records) and may lack ``retry_at_n``.
History records: commit ``{"version", "parent", "absorbed", "kept_in_stm", "time"}``, rollback
``{"rollback_from", "to", "time"}``, rejected candidate ``{"rejected", "reason", "retry_at_n", "time"}``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

MEASURED_KEYS = ("c_upd_s", "q_cart", "r_cart_s")


class StateError(ValueError):
    """A state record is malformed or inconsistent."""


@dataclass(frozen=True)
class ControllerState:
    """Immutable commit record (mutate through :meth:`commit`, :meth:`rollback`, :meth:`reject_candidate`)."""

    version: int = 0  # the serving cartridge version (0: none)
    parents: dict[int, int] = field(default_factory=dict)  # committed version -> its parent version
    absorbed: dict[str, int] = field(default_factory=dict)  # item id -> version that absorbed it
    history: tuple[dict[str, Any], ...] = ()
    measured: dict[str, float] = field(default_factory=dict)  # c_upd_s (s), q_cart (recall), r_cart_s (s/query)
    retry_at_n: int = 0  # backoff: no consolidation while the residual STM has fewer items

    # ----- views ------------------------------------------------------------------------------------------
    def lineage(self, version: int | None = None) -> list[int]:
        """``version`` (default: the current one) and its ancestors, newest first; 0 excluded."""
        out, v = [], self.version if version is None else version
        while v:
            out.append(v)
            v = self.parents[v]
        return out

    def absorbed_ids(self) -> set[str]:
        """Ids absorbed by the serving version or one of its ancestors."""
        live = set(self.lineage())
        return {i for i, v in self.absorbed.items() if v in live}

    def next_version(self) -> int:
        """A version number never used by a committed version (folders of old versions stay immutable)."""
        return max(self.parents, default=0) + 1

    # ----- mutators -----------------------------------------------------------------------------------------
    def commit(self, version: int, absorbed: Iterable[str], kept_in_stm: Iterable[str] = (),
               measured: dict[str, float] | None = None, mode: str = "full") -> ControllerState:
        """``version`` (child of the serving one) now serves; it absorbed ``absorbed``; ``mode`` says how it was
        trained (``"full"`` from scratch, ``"update"`` warm-started from its parent). Clears the backoff."""
        if version in self.parents or version <= 0:
            raise StateError(f"version {version} is already committed or invalid")
        ids = sorted(absorbed)
        if not ids:
            raise StateError("a commit must absorb at least one item")
        rec = {"version": version, "parent": self.version, "absorbed": ids, "kept_in_stm": sorted(kept_in_stm),
               "mode": mode, "time": time.time()}
        return replace(self, version=version, parents={**self.parents, version: self.version},
                       absorbed={**self.absorbed, **{i: version for i in ids}}, history=(*self.history, rec),
                       measured=_merge(self.measured, measured), retry_at_n=0)

    def updates_since_full(self) -> int | None:
        """Incremental commits since the last full retrain (0 right after one); None when the last event was a
        rollback or a rejected candidate, or nothing is committed: the next consolidation should retrain fully."""
        n = 0
        for rec in reversed(self.history):
            if "rejected" in rec or "rollback_from" in rec:
                return None
            if "version" in rec:
                if rec.get("mode") != "update":
                    return n
                n += 1
        return None

    def rollback(self) -> ControllerState:
        """Serve the parent of the current version again; what the current one absorbed returns to STM."""
        if self.version == 0:
            raise StateError("nothing to roll back: no committed cartridge")
        parent = self.parents[self.version]
        keep = set(self.lineage(parent))
        rec = {"rollback_from": self.version, "to": parent, "time": time.time()}
        return replace(self, version=parent, absorbed={i: v for i, v in self.absorbed.items() if v in keep},
                       history=(*self.history, rec))

    def reject_candidate(self, candidate: int, reason: str, retry_at_n: int,
                         measured: dict[str, float] | None = None) -> ControllerState:
        """A candidate version failed its checks and was never served: record why, what was measured on it
        (the rule's next decision uses it) and the backoff threshold (items)."""
        if retry_at_n < 0:
            raise StateError("retry_at_n must be >= 0")
        rec = {"rejected": candidate, "reason": reason, "retry_at_n": retry_at_n, "time": time.time()}
        return replace(self, history=(*self.history, rec), measured=_merge(self.measured, measured),
                       retry_at_n=int(retry_at_n))

    # ----- JSON ------------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out = {"version": self.version, "parents": {str(k): v for k, v in sorted(self.parents.items())},
               "absorbed": dict(self.absorbed), "history": copy.deepcopy(list(self.history)),
               "measured": dict(self.measured)}
        if self.retry_at_n:
            out["retry_at_n"] = self.retry_at_n
        return out

    @classmethod
    def from_json(cls, d: Any) -> ControllerState:
        """Validate and read a state record (this format or the older one without ``parents``)."""
        if not isinstance(d, dict):
            raise StateError("the state must be a JSON object")
        missing = [k for k in ("version", "absorbed", "history") if k not in d]
        if missing:
            raise StateError(f"the state lacks {missing}")
        history = d["history"]
        if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
            raise StateError("history must be a list of objects")
        if "parents" in d:
            parents = {_int(k, "parents key"): _int(v, "parent") for k, v in d["parents"].items()}
        else:  # older files: the commit records carry the parent
            parents = {_int(r["version"], "version"): _int(r["parent"], "parent") for r in history if "parent" in r}
        st = cls(version=_int(d["version"], "version"), parents=parents,
                 absorbed={str(k): _int(v, "absorbed version") for k, v in d["absorbed"].items()},
                 history=tuple(history), measured=_merge({}, d.get("measured") or {}),
                 retry_at_n=_int(d.get("retry_at_n", 0), "retry_at_n"))
        st.validate()
        return st

    def validate(self) -> None:
        """Raise :class:`StateError` unless versions form a tree rooted at 0 and every reference resolves."""
        if self.version and self.version not in self.parents:
            raise StateError(f"serving version {self.version} was never committed")
        for v, p in self.parents.items():
            if not 0 <= p < v or (p and p not in self.parents):
                raise StateError(f"version {v} has an invalid parent {p}")
        bad = sorted(i for i, v in self.absorbed.items() if v not in self.parents)
        if bad:
            raise StateError(f"items absorbed by uncommitted versions: {bad[:5]}")
        if self.retry_at_n < 0:
            raise StateError("retry_at_n must be >= 0")


def _int(v: Any, name: str) -> int:
    try:
        out = int(v)
    except (TypeError, ValueError):
        raise StateError(f"{name} must be an integer, got {v!r}") from None
    if isinstance(v, float) and v != out or isinstance(v, bool):
        raise StateError(f"{name} must be an integer, got {v!r}")
    return out


def _merge(old: dict[str, float], new: dict[str, Any] | None) -> dict[str, float]:
    """``old`` updated with the finite numbers of ``new`` (None values are skipped: not measured)."""
    out = dict(old)
    for k, v in (new or {}).items():
        if v is None:
            continue
        if k not in MEASURED_KEYS:
            raise StateError(f"unknown measured value {k!r} (known: {MEASURED_KEYS})")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise StateError(f"measured {k} must be a finite number >= 0, got {v!r}")
        out[k] = float(v)
    return out
