"""Crash-safe file writes (temp file + fsync + rename) and checksums. No pickle anywhere.

Every write leaves either the old file or the new one, never a torn one, and never a hidden temp file: the
temp file or folder is removed on any error, KeyboardInterrupt included. Files and folders get the permissions
the user's umask gives (``mkstemp``/``mkdtemp`` alone would make them private, 0600/0700, which other users of
a shared JupyterHub cannot read).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class UnwritableDirError(OSError):
    """A folder that must be written cannot be created or written (checked before any expensive work)."""


def current_umask() -> int:
    """The process umask (read from ``/proc`` where possible, so it is never changed, even briefly)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike, folder: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have: 0o666 (files) or 0o777 (folders) & ~umask."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new one, never a torn write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        apply_umask(tmp)
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """The JSON values of a JSONL file, one per non-blank line, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically. NaN/inf are refused (they are not JSON)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False, default=_json_default) + "\n")


@contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a hidden temporary name and publish it as ``path`` when the block succeeds.

    Yields the temporary folder. On success its files are fsynced, it gets umask permissions and replaces
    ``path`` (an old ``path`` only with ``overwrite``; checked before the block runs). On any error the
    temporary folder is removed and ``path`` is untouched. Raises ``FileExistsError`` when ``path`` exists.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = old = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        yield tmp
        for f in tmp.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        apply_umask(tmp, folder=True)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        tmp = None
    finally:
        if old is not None and (old / path.name).exists() and not path.exists():
            os.replace(old / path.name, path)  # interrupted between the two renames: the old folder comes back
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def ensure_writable_dir(path: str | os.PathLike, hint: str = "") -> Path:
    """Create ``path`` if needed and prove a file can be written in it; :class:`UnwritableDirError` (with
    ``hint`` appended) otherwise. Meant as a pre-flight check before minutes of work that end in a write."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UnwritableDirError(f"cannot write to the folder {path} ({e.__class__.__name__}: {e}). {hint}".rstrip()) from e
    return path


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
