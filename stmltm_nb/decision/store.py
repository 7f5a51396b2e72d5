"""The controller's folder on disk, crash-safe by construction, with one writer at a time:

- ``.lock``: an OS-level lock (``filelock``, flock on POSIX) held while a controller has the folder open; the
  OS drops it when the process dies, so a folder reopens after a crash.
- ``items.jsonl``: append-only log of every ingested item (flushed and fsynced before an append returns), the
  source of truth: no item is ever deleted from it. A torn last line (a crash mid-append, never acknowledged)
  is cut off when the log is read.
- ``state.json``: the commit record (:class:`~stmltm_nb.decision.state.ControllerState`), written atomically;
  writing it is the commit point.
- ``events.jsonl``: the decision log, one JSON object per line.
- ``versions/vNNNN/``: immutable cartridge folders.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from stmltm_nb.decision.state import ControllerState, StateError
from stmltm_nb.io import atomic_write_json, read_jsonl
from stmltm_nb.memory.items import STMItem, read_items

STATE_FILE = "state.json"
ITEMS_FILE = "items.jsonl"
EVENTS_FILE = "events.jsonl"
LOCK_FILE = ".lock"


class FolderBusyError(RuntimeError):
    """Another controller (in this or another process) has the folder open."""


class Store:
    """One controller folder. Opening takes the folder's lock; :meth:`close` releases it."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        try:
            (self.root / "versions").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(f"cannot create the controller folder {self.root}: {e}") from e
        self._lock = FileLock(self.root / LOCK_FILE, blocking=False, thread_local=False)
        try:
            self._lock.acquire()
        except Timeout:
            raise FolderBusyError(f"the controller folder {self.root} is open in another controller (lock "
                                  f"{self.root / LOCK_FILE} is held): one writer per folder; close the other "
                                  "one first") from None

    @property
    def is_open(self) -> bool:
        return self._lock.is_locked

    def close(self) -> None:
        """Release the folder's lock (idempotent)."""
        if self._lock.is_locked:
            self._lock.release(force=True)

    def _check_open(self) -> None:
        if not self._lock.is_locked:
            raise FolderBusyError(f"the controller folder {self.root} was closed: reopen it to write")

    # ----- state ---------------------------------------------------------------------------------------------
    def read_state(self) -> ControllerState:
        path = self.root / STATE_FILE
        if not path.exists():
            return ControllerState()
        try:
            return ControllerState.from_json(json.loads(path.read_text()))
        except (json.JSONDecodeError, StateError) as e:
            raise ValueError(f"{path} is corrupt ({e}); it is written atomically, so this is outside damage. "
                             "Restore it from a backup; items.jsonl still holds every item.") from e

    def write_state(self, state: ControllerState) -> None:
        """Atomic: readers (and a restart after a crash) see the old record or the new one."""
        self._check_open()
        state.validate()
        atomic_write_json(self.root / STATE_FILE, state.to_json())

    # ----- items --------------------------------------------------------------------------------------------
    def read_items(self) -> list[STMItem]:
        """Every logged item, in order; a torn last line is cut off first."""
        path = self.root / ITEMS_FILE
        if not path.exists():
            return []
        text = path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):  # a torn last line from a crash mid-append: never acknowledged
            self._check_open()
            with open(path, "r+", encoding="utf-8") as f:
                f.truncate(len(text[: text.rfind("\n") + 1].encode("utf-8")))
                f.flush()
                os.fsync(f.fileno())
        return read_items(path)

    def append_item(self, item: STMItem) -> None:
        """Append one item durably (fsynced before returning: the item is acknowledged)."""
        self._check_open()
        with open(self.root / ITEMS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    # ----- events -------------------------------------------------------------------------------------------
    def append_event(self, rec: dict[str, Any]) -> dict[str, Any]:
        self._check_open()
        with open(self.root / EVENTS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, default=_json_safe, ensure_ascii=False) + "\n")
            f.flush()
        return rec

    def events(self) -> list[dict[str, Any]]:
        path = self.root / EVENTS_FILE
        if not path.exists():
            return []
        return read_jsonl(path)

    def version_dir(self, v: int) -> Path:
        return self.root / "versions" / f"v{v:04d}"


def _json_safe(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    return str(o)
